package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DedupWindow is how long JetStream remembers an event id: a publisher that
// retries within it never stores an event twice.
const DedupWindow = 10 * time.Minute

// AuditStreamConfig is MOAT_AUDIT: file storage, work-queue retention (an event
// stays until auditd acks it, so events published before auditd ever runs are
// kept), and discard-new when full, so a full stream refuses new events — and
// with them new commands — instead of dropping unaudited ones.
func AuditStreamConfig(maxBytes int64) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        wire.AuditStream,
		Description: "moat audit events, held until auditd has stored them",
		Subjects:    []string{wire.SubjectAuditEvents + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.WorkQueuePolicy,
		Discard:     jetstream.DiscardNew,
		MaxBytes:    maxBytes,
		Duplicates:  DedupWindow,
		Replicas:    1,
	}
}

// RunClaimAge is how long sandboxd remembers that a request id ran.
const RunClaimAge = 24 * time.Hour

// DefaultRunsMaxBytes bounds MOAT_RUNS (busd --runs-max-bytes): a claim
// done takes about 500 bytes for its day, so about two million runs a day.
const DefaultRunsMaxBytes = 1 << 30

// RunsStreamConfig is MOAT_RUNS: one claim per request id (see
// pkg/sandboxd's claim), kept a day, so a retried request never runs twice,
// and each sandboxd's liveness record, so a dead holder's claims get closed.
// It is bounded by maxBytes and discards new messages when full, never old
// ones: an old claim dropped would let its request id run twice, or leave
// a lost holder's run open. Full, a new claim is refused (its run is a 503,
// nothing runs); a record rewritten no larger than it was (a beat, a claim
// marked done) is still stored.
func RunsStreamConfig(maxBytes int64) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              wire.RunsStream,
		Description:       "moat run claims: a request id runs once",
		Subjects:          []string{wire.SubjectRunClaim + ".*", wire.SubjectRunLive + ".*"},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardNew,
		MaxBytes:          maxBytes,
		MaxMsgsPerSubject: 1,
		MaxAge:            RunClaimAge,
		Duplicates:        2 * time.Minute,
		Replicas:          1,
	}
}

// adminConn is an in-process admin connection to ns.
func adminConn(ns *server.Server, h home.Home) (*nats.Conn, error) {
	auth, err := nats.NkeyOptionFromSeed(h.Creds(home.RoleAdmin))
	if err != nil {
		return nil, fmt.Errorf("read admin key: %w", err)
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns), auth, nats.Name("busd"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("connect to the embedded bus: %w", err)
	}
	return nc, nil
}

// StreamNames lists the JetStream streams busd keeps, key-value buckets
// under their streams' names (KV_<bucket>).
func StreamNames() []string {
	return []string{wire.AuditStream, wire.RunsStream, "KV_" + AuditAnchorConfig().Bucket, "KV_" + GrantsConfig().Bucket}
}

// StreamBounds are the byte bounds of MOAT_AUDIT and MOAT_RUNS.
type StreamBounds struct{ Audit, Runs int64 }

// ensureStreams creates the streams moat keeps (MOAT_AUDIT, MOAT_RUNS, the
// anchor bucket MOAT_AUDIT_ANCHOR and the grants bucket MOAT_GRANTS) with
// replicas copies, or updates them; running it on every start is safe. It
// never lowers a stream's replicas.
func ensureStreams(ctx context.Context, js jetstream.JetStream, bounds StreamBounds, replicas int) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, cfg := range []jetstream.StreamConfig{AuditStreamConfig(bounds.Audit), RunsStreamConfig(bounds.Runs)} {
		cfg.Replicas = replicas
		if s, err := js.Stream(ctx, cfg.Name); err == nil && s.CachedInfo().Config.Replicas > replicas {
			cfg.Replicas = s.CachedInfo().Config.Replicas
		}
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("create stream %s: %w", cfg.Name, err)
		}
	}
	for _, kv := range []jetstream.KeyValueConfig{AuditAnchorConfig(), GrantsConfig()} {
		kv.Replicas = replicas
		if s, err := js.Stream(ctx, "KV_"+kv.Bucket); err == nil && s.CachedInfo().Config.Replicas > replicas {
			kv.Replicas = s.CachedInfo().Config.Replicas
		}
		if _, err := js.CreateOrUpdateKeyValue(ctx, kv); err != nil {
			return fmt.Errorf("create key-value bucket %s: %w", kv.Bucket, err)
		}
	}
	return nil
}

// GrantsConfig is the key-value bucket where policyd keeps grants
// (wire.GrantsBucket): one key per grant, file storage, the latest value
// only. Per-key expiry is on (LimitMarkerTTL), so a grant with an expiry
// leaves the bucket by itself; policyd still checks the expiry on each use.
func GrantsConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:         wire.GrantsBucket,
		Description:    "moat grants: approvals given for a session, a duration, a number of uses, or as a rule",
		History:        1,
		Storage:        jetstream.FileStorage,
		MaxBytes:       64 << 20,
		MaxValueSize:   16 << 10,
		LimitMarkerTTL: time.Minute,
		Replicas:       1,
	}
}

// AuditAnchorConfig is the key-value bucket where auditd keeps the latest
// signed checkpoint of its store, outside the store (wire.AuditAnchorBucket):
// file storage, the latest value only.
func AuditAnchorConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      wire.AuditAnchorBucket,
		Description: "the latest signed checkpoint of auditd's store: verify proves the store reaches it",
		History:     1,
		Storage:     jetstream.FileStorage,
		MaxBytes:    1 << 20,
		Replicas:    1,
	}
}
