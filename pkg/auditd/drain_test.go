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
	"github.com/nats-io/nats.go/jetstream"
)

// TestStoresBeforeTheFetchEnds: auditd stores what the stream delivered
// without waiting for its pull request to fill or expire. Each fetch here
// stays open for 4 s and asks for more events than are sent: the events
// must still be stored within 2 s, one round after another.
func TestStoresBeforeTheFetchEnds(t *testing.T) {
	r := newRig(t)
	st := r.st
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r.run(ctx, auditd.Config{FetchWait: 4 * time.Second})
	pub := r.publisher()
	for round, n := range []int{1, 3, 40} {
		before := st.Stats().Records
		for range n {
			if err := pub.Publish(ctx, &wire.AuditEvent{Kind: wire.KindRunExit, Argv: []string{"true"}}); err != nil {
				t.Fatal(err)
			}
		}
		wait, waitCancel := context.WithTimeout(ctx, 2*time.Second)
		for st.Stats().Records < before+uint64(n) {
			if wait.Err() != nil {
				t.Fatalf("round %d: %d of %d events stored while the fetch is open", round, st.Stats().Records-before, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
		waitCancel()
	}
}

// TestStopLeavesNothingUnacked: auditd stopped in the middle of a flood
// stores and acks everything it was delivered before it returns — nothing
// is left to come again after the ack wait, as after a crash — round after
// round, and the next auditd stores the rest, each event once.
func TestStopLeavesNothingUnacked(t *testing.T) {
	r := newRig(t)
	st := r.st
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pub := r.publisher()
	js, err := jetstream.New(r.s.Conn(t, home.RoleAdmin))
	if err != nil {
		t.Fatal(err)
	}
	sent := 0
	for round := range 4 {
		d, err := r.start(ctx, auditd.Config{})
		if err != nil {
			t.Fatal(err)
		}
		for range 1500 {
			if err := pub.PublishAsync(&wire.AuditEvent{Kind: wire.KindRunExit, Argv: []string{"true"}}); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		<-pub.Acked()
		for st.Stats().Records == 0 && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		if err := d.Stop(); err != nil {
			t.Fatal(err)
		}
		// The acks are on the server when Stop returns; it applies them
		// to the consumer a moment later (a queue of its own).
		cons, err := js.Consumer(ctx, wire.AuditStream, auditd.Consumer)
		if err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			info, err := cons.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.NumAckPending == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: Stop left %d messages delivered and not acked (%d of %d stored)", round, info.NumAckPending, st.Stats().Records, sent)
			}
		}
	}
	r.run(ctx, auditd.Config{})
	for st.Stats().Records < uint64(sent) {
		if ctx.Err() != nil {
			t.Fatalf("%d of %d events stored", st.Stats().Records, sent)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := st.Stats().Records; n != uint64(sent) {
		t.Fatalf("%d records for %d events", n, sent)
	}
}

// TestEventsThatArriveTogetherShareABlock: events that reach auditd within
// its linger are stored as one block (group commit), not one block each,
// which would take several times the disk: 32 events published a
// millisecond apart (more than a block's store and fsync takes here), each
// its own message, within a linger of 2 s, take less than half of what the
// same events take stored one by one.
func TestEventsThatArriveTogetherShareABlock(t *testing.T) {
	r := newRig(t)
	st := r.st
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r.run(ctx, auditd.Config{Linger: 2 * time.Second})
	// One event first, so the burst's bytes are counted from a store that
	// exists.
	pub := r.publisher()
	if err := pub.Publish(ctx, &wire.AuditEvent{Kind: wire.KindRunExit}); err != nil {
		t.Fatal(err)
	}
	stored := func(n uint64) {
		t.Helper()
		for st.Stats().Records < n {
			if ctx.Err() != nil {
				t.Fatalf("%d of %d events stored", st.Stats().Records, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	stored(1)
	before := st.Stats().DiskBytes
	const n = 32
	for i := range n {
		ev := &wire.AuditEvent{Kind: wire.KindRunExit, Profile: "workspace-write", Argv: []string{"go", "test", "./pkg/" + strconv.Itoa(i)},
			Cwd: "~/proj", Verdict: wire.VerdictAllow, SessionID: "s1", RequestID: wire.NewID()}
		if err := pub.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	stored(1 + n)
	together := st.Stats().DiskBytes - before

	page, err := st.Query(wire.AuditQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := store.Open(store.Options{Dir: t.TempDir(), SigningKey: r.key})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	if _, err := ref.Append([]*wire.AuditEvent{&page.Events[0].Event}); err != nil {
		t.Fatal(err)
	}
	refBefore := ref.Stats().DiskBytes
	for _, e := range page.Events[1:] {
		if _, err := ref.Append([]*wire.AuditEvent{&e.Event}); err != nil {
			t.Fatal(err)
		}
	}
	alone := ref.Stats().DiskBytes - refBefore
	if len(page.Events) != 1+n || together*2 >= alone {
		t.Fatalf("%d events arriving together took %d bytes, %d stored one by one (%d events read back)", n, together, alone, len(page.Events))
	}
	t.Logf("%d events: %d bytes together, %d one by one", n, together, alone)
}

// TestQuerySeesWhatWasAcked: a query answers with every event the stream
// acked before it was asked, even while the drain lingers (here 3 s, in
// fetches open for 4 s): the query has what was gathered stored first.
// Round after round, each query is asked at once after the publish.
func TestQuerySeesWhatWasAcked(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r.run(ctx, auditd.Config{FetchWait: 4 * time.Second, Linger: auditd.MaxLinger})
	pub := r.publisher()
	c := r.s.Client(t, home.RoleAdmin)
	for round := range 5 {
		ev := &wire.AuditEvent{Kind: wire.KindRunExit, RequestID: wire.NewID(), Argv: []string{"true"}}
		if err := pub.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
		page, err := c.AuditQuery(ctx, &wire.AuditQuery{RequestID: ev.RequestID, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Events) != 1 || page.Events[0].Event.ID != ev.ID {
			t.Fatalf("round %d: the query right after the event's ack found %d events, want it", round, len(page.Events))
		}
	}
}

// rig is a bus and a store for auditd, with the keys it needs.
type rig struct {
	t   *testing.T
	s   *bustest.Stack
	san *audit.Sanitizer
	key ed25519.PrivateKey
	st  *store.Store
}

func newRig(t *testing.T) *rig {
	r := &rig{t: t, s: bustest.Start(t)}
	var err error
	if r.san, err = audit.LoadSanitizer(r.s.Home.HMACKey()); err != nil {
		t.Fatal(err)
	}
	if r.key, err = store.LoadSigningKey(r.s.Home.SigningKey()); err != nil {
		t.Fatal(err)
	}
	if r.st, err = store.Open(store.Options{Dir: t.TempDir(), SigningKey: r.key}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.st.Close() })
	return r
}

// run starts auditd as start does, and stops it when the test ends.
func (r *rig) run(ctx context.Context, cfg auditd.Config) *auditd.Daemon {
	d, err := r.start(ctx, cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { d.Stop() })
	return d
}

// publisher publishes as sandboxd.
func (r *rig) publisher() *audit.Publisher {
	pub, err := audit.NewPublisher(r.s.Conn(r.t, home.RoleSandboxd), home.RoleSandboxd, "t")
	if err != nil {
		r.t.Fatal(err)
	}
	return pub
}

// start starts auditd on the rig's store with cfg's other settings.
func (r *rig) start(ctx context.Context, cfg auditd.Config) (*auditd.Daemon, error) {
	cfg.Store, cfg.Sanitizer, cfg.Logger = r.st, r.san, slog.New(slog.DiscardHandler)
	return auditd.Start(ctx, r.s.Conn(r.t, home.RoleAuditd), cfg)
}
