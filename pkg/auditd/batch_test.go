package auditd_test

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/audit"
	"github.com/moatsec/moat/pkg/audit/store"
	"github.com/moatsec/moat/pkg/auditd"
	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// batchMsg is a batch message as docs/bus.md describes it.
func batchMsg(t *testing.T, id string, evs []*wire.AuditEvent) *nats.Msg {
	t.Helper()
	body := []byte{0x90 | byte(len(evs))}
	for _, ev := range evs {
		b, err := wire.Encode(wire.Msgpack, ev)
		if err != nil {
			t.Fatal(err)
		}
		body = append(body, b...)
	}
	m := nats.NewMsg(wire.AuditSubject(home.RoleSandboxd, wire.KindAuditBatch))
	m.Data = body
	m.Header.Set(wire.HeaderMsgID, id)
	m.Header.Set(wire.HeaderContentType, wire.ContentMsgpack)
	m.Header.Set(wire.HeaderKind, wire.KindAuditBatch)
	m.Header.Set(wire.HeaderAuditBatch, strconv.Itoa(len(evs)))
	return m
}

// TestBatchPartlyStoredStoresEachOnce: a batch whose first events a crash
// left in the store (stored and fsynced, the ack lost) is delivered again,
// and once more under another message id (a publisher retrying past the
// stream's de-duplication window): each of its events is stored exactly
// once, beside an old single-event message and a malformed batch (kept as
// one audit.malformed event), and the store verifies.
func TestBatchPartlyStoredStoresEachOnce(t *testing.T) {
	s := bustest.Start(t)
	san, err := audit.LoadSanitizer(s.Home.HMACKey())
	if err != nil {
		t.Fatal(err)
	}
	key, err := store.LoadSigningKey(s.Home.SigningKey())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Options{Dir: t.TempDir(), SigningKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	evs := make([]*wire.AuditEvent, 10)
	for i := range evs {
		evs[i] = &wire.AuditEvent{ID: wire.NewID(), TS: time.Now().UTC(), Source: home.RoleSandboxd, Instance: "t",
			Seq: uint64(i + 1), Kind: wire.KindRunExit, Argv: []string{"echo", strconv.Itoa(i)}}
	}
	// Before the crash: the first four of the batch reached the store.
	if _, err := st.Append(evs[:4]); err != nil {
		t.Fatal(err)
	}
	nc := s.Conn(t, home.RoleSandboxd)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, m := range []*nats.Msg{batchMsg(t, wire.NewID(), evs), batchMsg(t, wire.NewID(), evs)} {
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	bad := batchMsg(t, "bad-batch", evs[:2])
	bad.Data = bad.Data[:len(bad.Data)-5] // the second event cut short
	if _, err := js.PublishMsg(ctx, bad); err != nil {
		t.Fatal(err)
	}
	pub, err := audit.NewPublisher(nc, home.RoleSandboxd, "t2")
	if err != nil {
		t.Fatal(err)
	}
	lone := &wire.AuditEvent{Kind: wire.KindRunExit}
	if err := pub.Publish(ctx, lone); err != nil {
		t.Fatal(err)
	}

	d, err := auditd.Start(ctx, s.Conn(t, home.RoleAuditd), auditd.Config{Store: st, Sanitizer: san, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	const want = 10 + 1 + 1 // the batch's events, the lone one, the malformed batch
	for st.Stats().Records < want {
		if ctx.Err() != nil {
			t.Fatalf("stored %d records, want %d", st.Stats().Records, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c := s.Client(t, home.RoleAdmin)
	for {
		stats, err := c.AuditStats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if stats.Lag == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	page, err := st.Query(wire.AuditQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	malformed := 0
	for _, e := range page.Events {
		seen[e.Event.ID]++
		if e.Event.Kind == wire.KindAuditMalformed {
			malformed++
			if e.Event.ID != "bad-batch" {
				t.Errorf("the malformed batch is stored as %s", e.Event.ID)
			}
		}
	}
	for _, ev := range append(evs, lone) {
		if seen[ev.ID] != 1 {
			t.Errorf("event %s stored %d times", ev.ID, seen[ev.ID])
		}
	}
	if len(page.Events) != want || malformed != 1 {
		t.Fatalf("stored %d events (%d malformed), want %d (1)", len(page.Events), malformed, want)
	}
	rep, err := st.Verify(key.Public().(ed25519.PublicKey), nil)
	if err != nil || !rep.OK {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}
