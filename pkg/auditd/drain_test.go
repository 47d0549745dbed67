package auditd_test

import (
	"context"
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
)

// TestStoresBeforeTheFetchEnds: auditd stores what the stream delivered
// without waiting for its pull request to fill or expire. Each fetch here
// stays open for an hour and asks for more events than are sent: the
// events must still be stored, one round after another, and Stop must not
// wait for the hour.
func TestStoresBeforeTheFetchEnds(t *testing.T) {
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
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d, err := auditd.Start(ctx, s.Conn(t, home.RoleAuditd), auditd.Config{Store: st, Sanitizer: san,
		FetchWait: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := audit.NewPublisher(s.Conn(t, home.RoleSandboxd), home.RoleSandboxd, "t")
	if err != nil {
		t.Fatal(err)
	}
	for round, n := range []int{1, 3, 40} {
		before := st.Stats().Records
		for range n {
			if err := pub.Publish(ctx, &wire.AuditEvent{Kind: wire.KindRunExit, Argv: []string{"true"}}); err != nil {
				t.Fatal(err)
			}
		}
		wait, waitCancel := context.WithTimeout(ctx, 15*time.Second)
		for st.Stats().Records < before+uint64(n) {
			if wait.Err() != nil {
				t.Fatalf("round %d: %d of %d events stored while the fetch is open", round, st.Stats().Records-before, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
		waitCancel()
	}
	stopped := make(chan error, 1)
	go func() { stopped <- d.Stop() }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Stop waits for the open fetch")
	}
}

// TestEventsThatArriveTogetherShareABlock: events that reach auditd within
// its linger are stored as one block (group commit), not one block each,
// which would take several times the disk: 32 events published a
// millisecond apart (more than a block's store and fsync takes here), each
// its own message, within a linger of 2 s, take less than half of what the
// same events take stored one by one.
func TestEventsThatArriveTogetherShareABlock(t *testing.T) {
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
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d, err := auditd.Start(ctx, s.Conn(t, home.RoleAuditd), auditd.Config{Store: st, Sanitizer: san,
		Linger: 2 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	// One event first, so the burst's bytes are counted from a store that
	// exists.
	pub, err := audit.NewPublisher(s.Conn(t, home.RoleSandboxd), home.RoleSandboxd, "t")
	if err != nil {
		t.Fatal(err)
	}
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
	ref, err := store.Open(store.Options{Dir: t.TempDir(), SigningKey: key})
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
// acked before it was asked, even while the drain lingers (here an hour,
// in a fetch open for an hour): the query has what was gathered stored
// first. Round after round, each query is asked at once after the publish.
func TestQuerySeesWhatWasAcked(t *testing.T) {
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
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d, err := auditd.Start(ctx, s.Conn(t, home.RoleAuditd), auditd.Config{Store: st, Sanitizer: san,
		FetchWait: time.Hour, Linger: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	pub, err := audit.NewPublisher(s.Conn(t, home.RoleSandboxd), home.RoleSandboxd, "t")
	if err != nil {
		t.Fatal(err)
	}
	c := s.Client(t, home.RoleAdmin)
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
