package policyd_test

import (
	"context"
	"strings"
	"testing"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/policyd"
	"github.com/moatsec/moat/pkg/wire"
)

// TestNetAskAnswers: a network ask comes only from sandboxd's key; its
// answer may be once, run, session, a duration or uses — never a rule or a
// prefix — and "run" answers no command's ask.
func TestNetAskAnswers(t *testing.T) {
	s := start(t, policyd.Config{})
	c := s.Client(t, home.RoleClient)
	p, err := c.Resolve(context.Background(), &wire.ResolveRequest{Profile: "workspace-write", Workspace: s.ws})
	if err != nil {
		t.Fatal(err)
	}
	ask := &wire.NetAsk{Proto: "connect", Host: "asked.test", Port: 443, Rule: "net.not-allowed", Reason: "not listed"}

	// From the client key, on moat.policy.check: refused, nobody asked.
	d := c.Check(context.Background(), &wire.CheckRequest{Workspace: s.ws, Profile: wire.RefResolved(p), Approval: wire.ApprovalOnRequest, Net: ask})
	if d.Verdict != wire.VerdictDeny || !strings.Contains(d.Reasons[0].Message, "sandboxd only") {
		t.Fatalf("client's network ask: %+v", d)
	}
	// An ask with an argv, or a bad host, is a 400.
	sd := s.Client(t, home.RoleSandboxd)
	for _, bad := range []*wire.CheckRequest{
		{Argv: []string{"ls"}, Workspace: s.ws, Profile: wire.RefResolved(p), Net: ask},
		{Workspace: s.ws, Profile: wire.RefResolved(p), Net: &wire.NetAsk{Proto: "connect", Host: "a b", Port: 443}},
		{Workspace: s.ws, Profile: wire.RefResolved(p), Net: &wire.NetAsk{Proto: "connect", Host: "x.test", Port: 0}},
	} {
		if d := sd.CheckResolved(context.Background(), bad, nil); d.Verdict != wire.VerdictDeny || d.Reasons[0].Rule != wire.ReasonPolicyError {
			t.Errorf("bad ask %+v: %+v", bad.Net, d)
		}
	}

	got := make(chan wire.Decision, 1)
	go func() {
		got <- sd.CheckResolved(context.Background(), &wire.CheckRequest{RequestID: "net-1", Workspace: s.ws, Profile: wire.RefResolved(p),
			Approval: wire.ApprovalOnRequest, Net: ask}, nil)
	}()
	ap := s.Client(t, home.RoleApprover)
	l := waitApprovals(t, s, 1)
	if len(l) != 1 || l[0].Net == nil || l[0].Net.Dest() != "asked.test:443" {
		t.Fatalf("pending %+v", l)
	}
	for _, a := range []wire.ApprovalAnswer{{For: wire.GrantRule}, {For: wire.GrantSession, Prefix: []string{"x"}}} {
		a.ID, a.Verdict = l[0].ID, wire.VerdictAllow
		if _, err := ap.Answer(context.Background(), &a); wire.CodeOf(err) != wire.CodeBadRequest {
			t.Errorf("answer %+v: %v, want a 400", a, err)
		}
	}
	if _, err := ap.Answer(context.Background(), &wire.ApprovalAnswer{ID: l[0].ID, Verdict: wire.VerdictAllow, By: "t", For: wire.GrantRun}); err != nil {
		t.Fatal(err)
	}
	if d := <-got; d.Verdict != wire.VerdictAllow || d.Scope != wire.GrantRun || d.Reasons[0].Rule != "approval.granted" {
		t.Fatalf("decision %+v", d)
	}

	// A command's ask is not answered "for the run".
	go func() {
		got <- c.CheckWaiting(context.Background(), &wire.CheckRequest{Argv: []string{"git", "reset", "--hard"}, Workspace: s.ws,
			Profile: wire.RefName("workspace-write"), Approval: wire.ApprovalOnRequest}, nil)
	}()
	l = waitApprovals(t, s, 1)
	if _, err := ap.Answer(context.Background(), &wire.ApprovalAnswer{ID: l[0].ID, Verdict: wire.VerdictAllow, For: wire.GrantRun}); wire.CodeOf(err) != wire.CodeBadRequest {
		t.Fatalf("run for a command: %v", err)
	}
	ap.Answer(context.Background(), &wire.ApprovalAnswer{ID: l[0].ID, Verdict: wire.VerdictDeny})
	if d := <-got; d.Verdict != wire.VerdictDeny {
		t.Fatalf("command %+v", d)
	}
}
