package cli_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
)

// TestApprovalsShowsNetworkAsk: a host a run's egress proxy asks for is
// listed by `moat approvals` as "network: host:port (proto)" with why it
// was refused, and `moat approve ID --for run` answers that very ask.
func TestApprovalsShowsNetworkAsk(t *testing.T) {
	s := bustest.Start(t)
	startPolicy(t, s)
	t.Setenv(home.EnvHome, s.Home.Dir)
	t.Setenv(home.EnvBus, s.URL)
	ws := t.TempDir()
	p, err := s.Client(t, home.RoleClient).Resolve(context.Background(), &wire.ResolveRequest{Profile: "workspace-write", Workspace: ws})
	if err != nil {
		t.Fatal(err)
	}
	// sandboxd's side of an ask, as its egress proxy puts it.
	sd := s.Client(t, home.RoleSandboxd)
	got := make(chan wire.Decision, 1)
	go func() {
		got <- sd.CheckResolved(context.Background(), &wire.CheckRequest{RequestID: "net-ask-1", Workspace: ws, Profile: wire.RefResolved(p),
			Approval: wire.ApprovalOnRequest, Net: &wire.NetAsk{Proto: "connect", Host: "asked.test", Port: 8443,
				Rule: "net.not-allowed", Reason: "asked.test:8443 is not in the allow list"}}, nil)
	}()

	var listed []wire.ApprovalAsk
	for i := 0; i < 600 && len(listed) == 0; i++ {
		code, stdout, stderr := moat("approvals", "--json")
		if code != 0 || json.Unmarshal([]byte(stdout), &listed) != nil {
			t.Fatalf("moat approvals --json: exit %d:\n%s%s", code, stdout, stderr)
		}
		if len(listed) == 0 {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if len(listed) != 1 || listed[0].Net == nil || listed[0].Net.Dest() != "asked.test:8443" {
		t.Fatalf("pending %+v", listed)
	}
	id := listed[0].ID

	code, stdout, stderr := moat("approvals")
	var row string
	for _, l := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(l, id+" ") {
			row = l
		}
	}
	if code != 0 || !strings.Contains(row, " workspace-write ") || !strings.Contains(row, "network: asked.test:8443 (connect)") ||
		!strings.Contains(row, "not in the allow list") || !strings.Contains(stdout, "moat approve ID") {
		t.Fatalf("moat approvals: exit %d, row %q:\n%s%s", code, row, stdout, stderr)
	}

	if code, stdout, stderr := moat("approve", id, "--for", "run"); code != 0 {
		t.Fatalf("moat approve %s --for run: exit %d:\n%s%s", id, code, stdout, stderr)
	}
	if d := <-got; d.Verdict != wire.VerdictAllow || d.Scope != wire.GrantRun {
		t.Fatalf("the ask's decision %+v", d)
	}
	if code, stdout, _ := moat("approvals"); code != 0 || !strings.Contains(stdout, "nothing waits for approval") {
		t.Fatalf("after the answer: exit %d:\n%s", code, stdout)
	}
}
