package policyd_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/policyd"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestPromptFloodHoldsNothing: more prompting checks waiting than policyd
// has request slots leave other checks answered at once, and when their
// callers go away, every wait ends.
func TestPromptFloodHoldsNothing(t *testing.T) {
	const slots = 64 // checks in flight at once
	s := start(t, policyd.Config{ApprovalTimeout: time.Hour, MaxInflight: slots, MaxApprovals: 4 * slots})
	inline := []string{"python3", "-c", "print(1)"}
	// Callers that leave: connections that send prompting checks and close.
	var conns []*nats.Conn
	for i := 0; i < 8; i++ {
		conns = append(conns, s.Conn(t, home.RoleClient))
	}
	// The callers wait as long as it takes the flood to arrive (the race
	// detector on a busy machine makes that many seconds), and go away when
	// their connections close; leave ends the waits of any the close missed.
	leaveCtx, leave := context.WithCancel(context.Background())
	defer leave()
	var wg sync.WaitGroup
	flood := func(n int) {
		for i := 0; i < n; i++ {
			nc := conns[i%len(conns)]
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(leaveCtx, 5*time.Minute)
				defer cancel()
				client.FromConn(nc, time.Second).Check(ctx, &wire.CheckRequest{Argv: inline, Workspace: s.ws,
					Profile: wire.RefName("workspace-write"), Approval: wire.ApprovalOnRequest})
			}()
		}
	}
	// In two waves: a burst above the slots is refused while it is still
	// being evaluated; once waiting, the first wave holds no slot. Each
	// wave leaves room for waitApprovals' own listing, which takes a slot
	// of the same service while the wave is still being evaluated.
	const wave = slots - 8
	flood(wave)
	waitApprovals(t, s, wave)
	flood(wave)
	c := s.Client(t, home.RoleClient)
	waitApprovals(t, s, 2*wave) // more than the slots: the first wave holds none
	for i := 0; i < 20; i++ {
		if d := s.check(t, c, "offline", "ls"); d.Verdict != wire.VerdictAllow {
			t.Fatalf("check %d beside the flood: %+v", i, d)
		}
	}
	// The callers go: their connections close (nothing can be sent on
	// them any more), then their goroutines end.
	for _, nc := range conns {
		nc.Close()
	}
	waitApprovals(t, s, 0) // the closed connections alone end every wait
	leave()
	wg.Wait()
}

// TestApprovalBusy: past its limit of waiting approvals, policyd denies a
// prompt at once with its own reason.
func TestApprovalBusy(t *testing.T) {
	s := start(t, policyd.Config{ApprovalTimeout: time.Hour, MaxApprovals: 2})
	c := s.Client(t, home.RoleClient)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ask := func(ctx context.Context) wire.Decision {
		return c.Check(ctx, &wire.CheckRequest{Argv: []string{"python3", "-c", "1"}, Workspace: s.ws,
			Profile: wire.RefName("offline"), Approval: wire.ApprovalOnRequest})
	}
	go ask(ctx)
	go ask(ctx)
	waitApprovals(t, s, 2)
	if d := ask(context.Background()); d.Verdict != wire.VerdictDeny || d.Reasons[0].Rule != wire.ReasonApprovalBusy {
		t.Fatalf("a prompt past the approval limit: %+v", d)
	}
}

// TestApprovalEndsWithItsCaller: a caller that cancels ends its approval at
// once, and the decision on record says so.
func TestApprovalEndsWithItsCaller(t *testing.T) {
	s := start(t, policyd.Config{ApprovalTimeout: time.Hour})
	c := s.Client(t, home.RoleClient)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan wire.Decision, 1)
	go func() {
		done <- c.Check(ctx, &wire.CheckRequest{Argv: []string{"python3", "-c", "1"}, Workspace: s.ws,
			Profile: wire.RefName("offline"), Approval: wire.ApprovalOnRequest})
	}()
	waitApprovals(t, s, 1)
	cancel()
	<-done
	waitApprovals(t, s, 0)
	// The connection lives on: only the cancel could have ended the wait.
	if d := s.check(t, c, "offline", "ls"); d.Verdict != wire.VerdictAllow {
		t.Fatalf("after the cancel: %+v", d)
	}
}

// waitApprovals waits until policyd lists n pending approvals.
func waitApprovals(t *testing.T, s *stack, n int) []wire.ApprovalAsk {
	t.Helper()
	a := s.Client(t, home.RoleApprover)
	var got int
	for i := 0; i < 600; i++ {
		l, err := a.Approvals(context.Background(), 100*time.Millisecond)
		if got = len(l); err == nil && got == n {
			return l
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%d approvals pending, want %d", got, n)
	return nil
}

// TestStreamFullDeniesResolved: with the audit stream full, a check that
// carries its own resolved profile (so profiled records nothing) is denied,
// not allowed unrecorded: by policyd, whose record failed (its first), or,
// once its records go steadily, by the caller, whose record's ack says the
// stream refused it (wire.HeaderRecordAck).
func TestStreamFullDeniesResolved(t *testing.T) {
	for _, steady := range []bool{false, true} {
		t.Run(fmt.Sprintf("steady=%v", steady), func(t *testing.T) {
			s := start(t, policyd.Config{})
			c := s.Client(t, home.RoleClient)
			p, err := c.Resolve(context.Background(), &wire.ResolveRequest{Profile: "workspace-write", Workspace: s.ws})
			if err != nil {
				t.Fatal(err)
			}
			if steady {
				if d := c.Check(context.Background(), &wire.CheckRequest{Argv: []string{"ls"}, Profile: wire.RefResolved(p)}); d.Verdict != wire.VerdictAllow {
					t.Fatalf("a check with room in the stream: %+v", d)
				}
			}
			fillStream(t, s)
			for i := 0; i < 3; i++ {
				d := c.Check(context.Background(), &wire.CheckRequest{Argv: []string{"ls"}, Profile: wire.RefResolved(p)})
				if d.Verdict != wire.VerdictDeny || d.Reasons[0].Rule != wire.ReasonAuditUnavailable || !strings.Contains(d.Reasons[0].Message, "is full") {
					t.Fatalf("check %d with the stream full: %+v", i, d)
				}
			}
		})
	}
}

// fillStream shrinks MOAT_AUDIT to what it holds, so the next event is refused.
func fillStream(t *testing.T, s *stack) {
	t.Helper()
	ctx := context.Background()
	js, err := jetstream.New(s.Conn(t, home.RoleAdmin))
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, wire.AuditStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.MaxBytes = int64(st.CachedInfo().State.Bytes) + 64
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		js.Publish(ctx, wire.AuditSubject("test", fmt.Sprintf("filler.%d", i)), make([]byte, 48))
	}
}

// TestAnswerNeedsApproverKey: answering with the agent's key is refused at
// once with what to use instead, and the approval still waits.
func TestAnswerNeedsApproverKey(t *testing.T) {
	s := start(t, policyd.Config{ApprovalTimeout: time.Hour})
	c := s.Client(t, home.RoleClient)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Check(ctx, &wire.CheckRequest{Argv: []string{"python3", "-c", "1"}, Workspace: s.ws,
		Profile: wire.RefName("offline"), Approval: wire.ApprovalOnRequest})
	l := waitApprovals(t, s, 1)
	actx, acancel := context.WithTimeout(context.Background(), time.Minute)
	defer acancel()
	_, err := s.Client(t, home.RoleClient).Answer(actx, &wire.ApprovalAnswer{ID: l[0].ID, Verdict: wire.VerdictAllow})
	if wire.CodeOf(err) != wire.CodeDenied || !strings.Contains(err.Error(), "approver key") {
		t.Fatalf("answer with the client key: %v, want 403 naming the approver key", err)
	}
	waitApprovals(t, s, 1)
}

// TestSandboxdAllowOnRecord: an allow sandboxd asked for is answered
// without waiting for its record's ack (sandboxd records the run's decision
// itself, acked before anything runs); its policy.decision is put on record
// in the background, and Stop waits for it. A client's allow still waits
// (TestStreamFullDeniesResolved).
func TestSandboxdAllowOnRecord(t *testing.T) {
	s := start(t, policyd.Config{})
	sb := s.Client(t, home.RoleSandboxd)
	p, err := sb.Resolve(context.Background(), &wire.ResolveRequest{Profile: "workspace-write", Workspace: s.ws})
	if err != nil {
		t.Fatal(err)
	}
	d := sb.CheckResolved(context.Background(), &wire.CheckRequest{RequestID: "req-sandboxd", Argv: []string{"ls"},
		Workspace: s.ws, Cwd: p.Cwd, Profile: wire.RefResolved(p), Approval: wire.ApprovalOnRequest}, nil)
	if d.Verdict != wire.VerdictAllow {
		t.Fatalf("sandboxd's check: %+v", d)
	}
	if err := s.policy.Stop(); err != nil {
		t.Fatal(err)
	}
	lastDecisionIs(t, s, "req-sandboxd", wire.VerdictAllow)
}

// lastDecisionIs fails t unless the last policy.decision in MOAT_AUDIT is
// request id's, with verdict.
func lastDecisionIs(t *testing.T, s *stack, id, verdict string) {
	t.Helper()
	ctx := context.Background()
	js, err := jetstream.New(s.Conn(t, home.RoleAdmin))
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, wire.AuditStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(ctx, wire.AuditSubject(wire.ServicePolicyd, wire.KindPolicyDecision))
	if err != nil {
		t.Fatalf("no decision on record: %v", err)
	}
	var ev wire.AuditEvent
	if err := wire.Decode(wire.Msgpack, m.Data, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.RequestID != id || ev.Verdict != verdict {
		t.Fatalf("last decision on record: %s %s, want %s's %s", ev.RequestID, ev.Verdict, id, verdict)
	}
}

// TestSandboxdGrantAllowOnRecordFirst: an allow a grant gives is answered
// only once on record, also when sandboxd asked (whose other allows are
// recorded in the background): with the stream full, the grant's allow is a
// deny audit-unavailable, not an allow nobody can find on record.
func TestSandboxdGrantAllowOnRecordFirst(t *testing.T) {
	s := start(t, policyd.Config{})
	grant(t, s, "workspace-write", "", wire.ApprovalAnswer{For: "1h"}, inline...)
	sb := s.Client(t, home.RoleSandboxd)
	p, err := sb.Resolve(context.Background(), &wire.ResolveRequest{Profile: "workspace-write", Workspace: s.ws})
	if err != nil {
		t.Fatal(err)
	}
	fillStream(t, s)
	d := sb.CheckResolved(context.Background(), &wire.CheckRequest{RequestID: "req-granted", Argv: inline,
		Workspace: s.ws, Cwd: p.Cwd, Profile: wire.RefResolved(p), Approval: wire.ApprovalOnRequest}, nil)
	if d.Verdict != wire.VerdictDeny || d.Reasons[0].Rule != wire.ReasonAuditUnavailable {
		t.Fatalf("sandboxd's check of a granted command with the stream full: %+v", d)
	}
}
