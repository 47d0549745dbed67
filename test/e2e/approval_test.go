//go:build linux

package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/home"
)

// TestApprovalWaitVisible runs the real binaries: while a person is asked,
// moat check says who may answer and how long is left; moat approve with
// the agent's key is refused at once with what to use; with the approver
// key the check goes through.
func TestApprovalWaitVisible(t *testing.T) {
	e := newEnv(t)
	_, url := startBus(t, e)
	start(t, e.cmd("profiled"))
	start(t, e.cmd("policyd", "--approval-timeout", "2m"))
	c := dialWait(t, e, url)
	waitService(t, c, "policyd", 1)

	chk := e.cmd("moat", "check", "--approval", "on-request", "--", "python3", "-c", "print(1)")
	chk.Dir = e.ws
	p := start(t, chk)
	asked := regexp.MustCompile(`moat approve (\S+) or moat deny \S+ answers; \S+ left`)
	var id string
	eventually(t, 30*time.Second, "moat check saying who is asked", func() error {
		m := asked.FindStringSubmatch(p.output())
		if m == nil {
			return fmt.Errorf("output so far: %q", p.output())
		}
		id = m[1]
		return nil
	})
	if !strings.Contains(p.output(), "waiting for a person to approve (exec.inline-code") {
		t.Errorf("no reason given: %q", p.output())
	}

	t0 := time.Now()
	out, err := e.cmd("moat", "approve", id, "--creds", filepath.Join(e.home, "creds", home.RoleClient+".nk")).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 || !strings.Contains(string(out), "may not approve: use the approver key") || !strings.Contains(string(out), "(403)") {
		t.Fatalf("moat approve with the client key: %v\n%s", err, out)
	}
	if took := time.Since(t0); took > 4*time.Second {
		t.Errorf("the refusal took %v: it waited for a timeout", took)
	}
	if out, err := e.cmd("moat", "approve", id).CombinedOutput(); err != nil {
		t.Fatalf("moat approve: %v\n%s", err, out)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("moat check still waits after the approval")
	}
	if p.err != nil || !strings.Contains(p.output(), "ALLOW") || !strings.Contains(p.output(), "approval.granted") {
		t.Fatalf("moat check after the approval: %v\n%s", p.err, p.output())
	}
}
