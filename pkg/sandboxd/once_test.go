package sandboxd

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
)

// A request id is claimed once across every sandboxd on the bus: of many
// claims racing from two daemons, exactly one wins and the others get 409.
func TestClaimOnce(t *testing.T) {
	s := bustest.Start(t)
	var daemons []*Daemon
	for range 2 {
		d, err := Start(s.Conn(t, home.RoleSandboxd), Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Stop() })
		daemons = append(daemons, d)
	}
	ctx := context.Background()
	const tries = 8
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		won, lost int
	)
	for i := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := daemons[i%2].claim(ctx, &wire.RunRequest{RequestID: "req-1"}, "")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case wire.CodeOf(err) == wire.CodeConflict:
				lost++
			default:
				t.Errorf("claim: %v, want nil or 409", err)
			}
		}()
	}
	wg.Wait()
	if won != 1 || lost != tries-1 {
		t.Fatalf("won %d, refused %d of %d claims; want exactly one winner", won, lost, tries)
	}
	if _, err := daemons[1].claim(ctx, &wire.RunRequest{RequestID: "req-2"}, ""); err != nil {
		t.Fatalf("another request id: %v", err)
	}
}

// A claim sent again by the same attempt (its ack was lost, and the server
// checks the expected sequence before de-duplicating) is still its own: the
// run goes on. Another attempt at the same id is refused.
func TestClaimResentIsOwn(t *testing.T) {
	s := bustest.Start(t)
	d, err := Start(s.Conn(t, home.RoleSandboxd), Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop() })
	ctx := context.Background()
	rr := &wire.RunRequest{RequestID: "req-r"}
	if _, err := d.claimAttempt(ctx, rr, "", "attempt-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.claimAttempt(ctx, rr, "", "attempt-1"); err != nil {
		t.Fatalf("the same attempt again: %v, want its own claim", err)
	}
	if _, err := d.claimAttempt(ctx, rr, "", "attempt-2"); wire.CodeOf(err) != wire.CodeConflict {
		t.Fatalf("another attempt: %v, want 409", err)
	}
}

// Without the claim stream nothing runs: the claim fails closed with 503.
func TestClaimFailsClosed(t *testing.T) {
	s := bustest.Start(t)
	d, err := Start(s.Conn(t, home.RoleSandboxd), Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop() })
	admin := s.Client(t, home.RoleAdmin).Conn()
	if _, err := admin.Request("$JS.API.STREAM.DELETE."+wire.RunsStream, nil, 5e9); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3e9)
	defer cancel()
	if _, err := d.claim(ctx, &wire.RunRequest{RequestID: "req-1"}, ""); wire.CodeOf(err) != wire.CodeUnavailable {
		t.Fatalf("claim without %s: %v, want 503", wire.RunsStream, err)
	}
}

// BenchmarkClaim is what a run pays for its claim on a real embedded bus:
// storing it (before the decision is recorded), and then marking it done
// (after the end is recorded). Compare the two sub-benchmarks' ns/op.
func BenchmarkClaim(b *testing.B) {
	s := bustest.Start(b)
	d, err := Start(s.Conn(b, home.RoleSandboxd), Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Stop() })
	ctx := context.Background()
	b.Run("claim", func(b *testing.B) {
		for b.Loop() {
			if _, err := d.claim(ctx, &wire.RunRequest{RequestID: wire.NewID(), Argv: []string{"make", "test"}}, "workspace-write"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("claim+done", func(b *testing.B) {
		for b.Loop() {
			c, err := d.claim(ctx, &wire.RunRequest{RequestID: wire.NewID(), Argv: []string{"make", "test"}}, "workspace-write")
			if err != nil {
				b.Fatal(err)
			}
			c.done("exit 0")
		}
	})
}

// A released claim (nothing ran: the slot wait ended, the decision was not
// recorded) lets the same request id be claimed again; a done one answers
// 409 saying how the run ended.
func TestClaimReleasedClaimedAgain(t *testing.T) {
	s := bustest.Start(t)
	d, err := Start(s.Conn(t, home.RoleSandboxd), Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop() })
	ctx := context.Background()
	rr := &wire.RunRequest{RequestID: "req-again"}
	c, err := d.claimAttempt(ctx, rr, "", "attempt-1")
	if err != nil {
		t.Fatal(err)
	}
	c.release("the caller's deadline passed")
	if c, err = d.claimAttempt(ctx, rr, "", "attempt-2"); err != nil {
		t.Fatalf("after a release: %v, want the id claimed again", err)
	}
	c.done("exit 7")
	_, err = d.claimAttempt(ctx, rr, "", "attempt-3")
	if wire.CodeOf(err) != wire.CodeConflict || !strings.Contains(err.Error(), "exit 7") {
		t.Fatalf("after it ran: %v, want 409 saying exit 7", err)
	}
	if n := d.held.Load(); n != 0 {
		t.Errorf("%d claims held after release and done, want 0", n)
	}
}
