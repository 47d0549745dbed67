package policyd_test

import (
	"context"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/policyd"
	"github.com/moatsec/moat/pkg/wire"
)

// resolvedCheck asks for argv on-request under a profile the caller
// supplies whole, with a short approval timeout.
func resolvedCheck(c interface {
	Check(context.Context, *wire.CheckRequest) wire.Decision
}, p *wire.Profile, argv ...string) wire.Decision {
	return c.Check(context.Background(), &wire.CheckRequest{Argv: argv, Workspace: p.Workspace, Profile: wire.RefResolved(p),
		Approval: wire.ApprovalOnRequest, ApprovalTimeoutMS: 300})
}

// TestGrantIgnoresSuppliedProfile: a client key that sends its own resolved
// profile is judged under it, but no grant covers it: neither the profile
// profiled gives (policyd cannot tell it from a forged one) nor a forged
// one that names the grant's workspace and profile and widens the rules
// (network on), which would turn a deny into a prompt, then an allow.
func TestGrantIgnoresSuppliedProfile(t *testing.T) {
	s := start(t, policyd.Config{})
	g := grant(t, s, "workspace-write", "", wire.ApprovalAnswer{For: "1h", Prefix: []string{"git"}}, "git", "reset", "--hard")
	c := s.Client(t, home.RoleClient)
	if d := grantCheck(t, c, s.ws, "workspace-write", "", "git", "reset", "--hard"); !covered(d) {
		t.Fatalf("by profile name (policyd resolves it): %+v", d)
	}
	push := []string{"git", "push", "--force", "origin", "main"}
	if d := grantCheck(t, c, s.ws, "workspace-write", "", push...); d.Verdict != wire.VerdictDeny || d.Reasons[0].Rule != "net.client" {
		t.Fatalf("git push without network, by name: %+v, want deny net.client", d)
	}
	real, err := c.Resolve(context.Background(), &wire.ResolveRequest{Profile: "workspace-write", Workspace: s.ws})
	if err != nil {
		t.Fatal(err)
	}
	forged := *real
	forged.Net = wire.Net{Mode: wire.NetFull}
	for name, d := range map[string]wire.Decision{
		"the real profile, sent by a client":     resolvedCheck(c, real, "git", "reset", "--hard"),
		"a forged profile: the prompt":           resolvedCheck(c, &forged, "git", "reset", "--hard"),
		"a forged profile: a deny made a prompt": resolvedCheck(c, &forged, push...),
	} {
		if !asked(d) {
			t.Errorf("%s: %+v, want a person asked (no grant)", name, d)
		}
	}
	// The client key cannot send sandboxd's checks: the bus refuses them.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if d := c.CheckResolved(ctx, &wire.CheckRequest{Argv: push, Profile: wire.RefResolved(&forged),
		Approval: wire.ApprovalOnRequest, ApprovalTimeoutMS: 300}, nil); d.Verdict != wire.VerdictDeny || covered(d) {
		t.Fatalf("the client key on %s: %+v, want a deny", wire.SubjectCheckResolved, d)
	}
	if n := eventsOf(t, s, wire.KindGrantUsed, 2); n != 1 {
		t.Fatalf("%d uses of grant %s on record, want 1 (the check by name)", n, g.ID)
	}
	// sandboxd's own checks are vouched for: the grant covers them.
	sb := s.Client(t, home.RoleSandboxd)
	if d := sb.CheckResolved(context.Background(), &wire.CheckRequest{Argv: []string{"git", "reset", "--hard"},
		Profile: wire.RefResolved(real), Approval: wire.ApprovalOnRequest, ApprovalTimeoutMS: 300}, nil); !covered(d) {
		t.Fatalf("sandboxd's check: %+v", d)
	}
}

// TestGrantNotFromSuppliedProfile: a prompt asked under a profile the caller
// sent whole can be answered once, but not made a grant (400; the approval
// stays open), so a forged workspace or profile name never scopes one.
func TestGrantNotFromSuppliedProfile(t *testing.T) {
	s := start(t, policyd.Config{})
	c := s.Client(t, home.RoleClient)
	p, err := c.Resolve(context.Background(), &wire.ResolveRequest{Profile: "workspace-write", Workspace: s.ws})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan wire.Decision, 1)
	go func() {
		done <- c.Check(context.Background(), &wire.CheckRequest{Argv: inline, Profile: wire.RefResolved(p), Approval: wire.ApprovalOnRequest})
	}()
	ap := s.Client(t, home.RoleApprover)
	q := waitApprovals(t, s, 1)
	for _, f := range []string{"1h", "session", "3uses", "rule"} {
		if _, err := ap.Answer(context.Background(), &wire.ApprovalAnswer{ID: q[0].ID, Verdict: wire.VerdictAllow, For: f}); wire.CodeOf(err) != wire.CodeBadRequest {
			t.Fatalf("answer for %s: %v, want 400", f, err)
		}
	}
	if _, err := ap.Answer(context.Background(), &wire.ApprovalAnswer{ID: q[0].ID, Verdict: wire.VerdictAllow}); err != nil {
		t.Fatalf("answer once: %v", err)
	}
	if d := <-done; d.Verdict != wire.VerdictAllow {
		t.Fatalf("the check answered once: %+v", d)
	}
	if l, _ := ap.Grants(context.Background()); len(l) != 0 {
		t.Fatalf("grants made from a supplied profile: %+v", l)
	}
}
