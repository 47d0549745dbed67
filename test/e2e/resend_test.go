//go:build linux

package e2e

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/wire"
	"github.com/moatsec/moat/test/testbin"
)

// TestCheckSentWhileBusDown: a check asked while busd is down (SIGKILLed,
// then started again on its address) is decided once the bus is back —
// the client sends it when its connection returns, and again if no policyd
// had it (issue 16) — not denied as policy-unavailable or policy-timeout;
// and it is decided once: one policy.decision record under its request id.
func TestCheckSentWhileBusDown(t *testing.T) {
	e := newEnv(t)
	bus, busURL := startBus(t, e)
	start(t, e.cmd("profiled"))
	start(t, e.cmd("policyd", "--approval-timeout", "2s"))
	start(t, e.cmd("auditd"))
	c := dialWait(t, e, busURL)
	waitService(t, c, "policyd", 1)
	waitService(t, c, "auditd", 1)
	// The check carries its resolved profile: which of policyd and
	// profiled reconnects first is not the question here, and policyd
	// bounds its own resolving by its deadline (2 s).
	p, err := c.Resolve(context.Background(), &wire.ResolveRequest{Profile: "workspace-write", Workspace: e.ws})
	if err != nil {
		t.Fatal(err)
	}
	check := func(id string) wire.Decision {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		return c.Check(ctx, &wire.CheckRequest{RequestID: id, Argv: []string{"true"}, Cwd: e.ws, Workspace: e.ws, Profile: wire.RefResolved(p)})
	}
	if d := check(wire.NewID()); d.Verdict != wire.VerdictAllow {
		t.Fatalf("a check with the bus up: %+v; want allow", d)
	}

	bus.Kill()
	for c.Conn().IsConnected() {
		time.Sleep(10 * time.Millisecond)
	}
	id := wire.NewID()
	decided := make(chan wire.Decision, 1)
	go func() { decided <- check(id) }()
	for n, _ := c.Conn().Buffered(); n <= 0; n, _ = c.Conn().Buffered() { // waiting in nats.go's buffer
		time.Sleep(10 * time.Millisecond)
	}
	u, err := url.Parse(busURL)
	if err != nil {
		t.Fatal(err)
	}
	start(t, e.cmd("busd", "--listen", u.Host))
	select {
	case d := <-decided:
		if d.Verdict != wire.VerdictAllow {
			t.Fatalf("a check asked while busd was down: %+v; want allow once the bus is back", d)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("a check asked while busd was down: no decision in 2 min")
	}

	// Its record, and no second: a check decided after it is on record
	// after any second decision of it would be.
	after := wire.NewID()
	if d := check(after); d.Verdict != wire.VerdictAllow {
		t.Fatalf("a check after the restart: %+v; want allow", d)
	}
	count := func(id string) (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		page, err := c.AuditQuery(ctx, &wire.AuditQuery{RequestID: id, Kind: wire.KindPolicyDecision, Limit: 10})
		if err != nil {
			return 0, err
		}
		return len(page.Events), nil
	}
	testbin.Eventually(t, 60*time.Second, "the decisions on record", func() error {
		if n, err := count(after); err != nil || n != 1 {
			return fmt.Errorf("the check after: %d decisions on record (%v)", n, err)
		}
		return nil
	})
	if n, err := count(id); err != nil || n != 1 {
		t.Fatalf("the check asked while busd was down: %d decisions on record (%v); want 1", n, err)
	}
}
