package policyd_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/policyd"
	"github.com/moatsec/moat/pkg/wire"
)

// TestIrreversibleAsksAPerson: over the bus, git reset --hard is a prompt;
// with approval never it is denied at once; on request the person asked
// reads what would be lost, and their answer decides.
func TestIrreversibleAsksAPerson(t *testing.T) {
	s := start(t, policyd.Config{ApprovalTimeout: 5 * time.Second})
	c := s.Client(t, home.RoleClient)
	ask := func(approval string) wire.Decision {
		return c.Check(context.Background(), &wire.CheckRequest{Argv: []string{"git", "reset", "--hard"}, Workspace: s.ws, Profile: wire.RefName("workspace-write"), Approval: approval})
	}
	if d := ask(""); d.Verdict != wire.VerdictPrompt || d.Reasons[0].Rule != "irreversible.work" || !strings.Contains(d.Reasons[0].Message, "uncommitted change") {
		t.Fatalf("report: %+v", d)
	}
	if d := ask(wire.ApprovalNever); d.Verdict != wire.VerdictDeny || d.Reasons[0].Rule != wire.ReasonApprovalNever {
		t.Fatalf("never: %+v", d)
	}
	seen := approver(t, s, wire.VerdictDeny, 50*time.Millisecond)
	if d := ask(wire.ApprovalOnRequest); d.Verdict != wire.VerdictDeny || d.Reasons[0].Rule != "approval.denied" {
		t.Fatalf("on request: %+v", d)
	}
	q := <-seen
	found := false
	for _, r := range q.Reasons {
		found = found || (r.Rule == "irreversible.work" && strings.Contains(r.Message, "throws away every uncommitted change"))
	}
	if !found {
		t.Fatalf("the person was not told what would be lost: %+v", q.Reasons)
	}
}
