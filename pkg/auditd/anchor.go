package auditd

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/moatsec/moat/pkg/audit/store"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Anchor keeps the latest signed checkpoint of the store outside it: in
// the bus's key-value bucket wire.AuditAnchorBucket and, when Dir is set,
// as Dir/checkpoint.json. Verify proves the store reaches it, and a store
// that does not is never appended to (store.Options.Anchor).
//
// Order: a checkpoint is fsynced in the store before it is put here, so
// the anchor is never ahead of what the disk held.
type Anchor struct {
	nc  *nats.Conn
	kv  jetstream.KeyValue
	dir string
	log *slog.Logger
}

// anchorTimeout bounds one read or write of the anchor.
const anchorTimeout = 2 * time.Second

// OpenAnchor finds the anchor bucket (busd creates it beside MOAT_AUDIT; an
// auditd started beside busd waits for it, up to 30 s). dir, if not
// empty, gets a second copy of each checkpoint.
func OpenAnchor(ctx context.Context, nc *nats.Conn, dir string, log *slog.Logger) (*Anchor, error) {
	if log == nil {
		log = slog.Default()
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		actx, acancel := context.WithTimeout(wctx, anchorTimeout)
		kv, err := js.KeyValue(actx, wire.AuditAnchorBucket)
		acancel()
		if err == nil {
			return &Anchor{nc: nc, kv: kv, dir: dir, log: log}, nil
		}
		if !errors.Is(err, jetstream.ErrBucketNotFound) && !jetStreamStarting(err) {
			return nil, fmt.Errorf("anchor bucket %s: %w", wire.AuditAnchorBucket, err)
		}
		select {
		case <-wctx.Done():
			return nil, fmt.Errorf("anchor bucket %s not found after 30s: start busd (it creates the bucket) and point auditd at it", wire.AuditAnchorBucket)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Put publishes a checkpoint just written: on moat.audit.checkpoint (for
// whoever watches), into the bucket, and into the anchor file. A failure is
// logged: the anchor then lags, and the next checkpoint catches it up.
func (a *Anchor) Put(c store.Checkpoint) {
	data, err := json.Marshal(c)
	if err != nil {
		a.log.Error("anchor: encode checkpoint", "err", err)
		return
	}
	a.nc.Publish(wire.SubjectAuditCkpt, data)
	ctx, cancel := context.WithTimeout(context.Background(), anchorTimeout)
	defer cancel()
	if _, err := a.kv.Put(ctx, wire.AuditAnchorKey, data); err != nil {
		a.log.Warn("anchor: checkpoint not kept on the bus (the next one will be)", "size", c.Size, "err", err)
	}
	if a.dir != "" {
		if err := store.WriteAnchorFile(a.dir, c); err != nil {
			a.log.Warn("anchor: checkpoint not kept in the anchor directory (the next one will be)", "size", c.Size, "err", err)
		}
	}
}

// Get reads the anchor from the bucket; nil when none was kept yet (a new
// store).
func (a *Anchor) Get(ctx context.Context) (*store.Checkpoint, error) {
	ctx, cancel := context.WithTimeout(ctx, anchorTimeout)
	defer cancel()
	e, err := a.kv.Get(ctx, wire.AuditAnchorKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the anchor from %s: %w", wire.AuditAnchorBucket, err)
	}
	return store.ParseAnchor(e.Value())
}

// Latest reads the anchor at start and checks its signature: the
// checkpoint store.Open must find the store reaching. One this store's key
// did not sign is an error, since the anchor cannot then vouch for anything.
//
// A cluster still placing the bucket's copies may not answer at first:
// Latest asks again for up to 30 s before it gives up.
func (a *Anchor) Latest(ctx context.Context, pub ed25519.PublicKey) (*store.Checkpoint, error) {
	deadline := time.Now().Add(30 * time.Second)
	cp, err := a.Get(ctx)
	for err != nil && jetStreamStarting(err) && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		cp, err = a.Get(ctx)
	}
	if err != nil || cp == nil {
		return nil, err
	}
	if pub != nil && !cp.Verify(pub) {
		return nil, fmt.Errorf("the anchor in %s is not signed by this store's key: someone replaced it, or auditd runs with another MOAT_HOME", wire.AuditAnchorBucket)
	}
	return cp, nil
}
