package auditd_test

import (
	"context"
	"log/slog"
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
