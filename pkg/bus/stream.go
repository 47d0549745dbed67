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

// ensureAuditStream creates or updates MOAT_AUDIT through an in-process admin
// connection; running it on every start is safe.
func ensureAuditStream(ctx context.Context, ns *server.Server, h home.Home, maxBytes int64) error {
	auth, err := nats.NkeyOptionFromSeed(h.Creds(home.RoleAdmin))
	if err != nil {
		return fmt.Errorf("read admin key: %w", err)
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns), auth, nats.Name("busd"))
	if err != nil {
		return fmt.Errorf("connect to the embedded bus: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := js.CreateOrUpdateStream(ctx, AuditStreamConfig(maxBytes)); err != nil {
		return fmt.Errorf("create stream %s: %w", wire.AuditStream, err)
	}
	return nil
}
