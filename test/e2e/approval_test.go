//go:build linux

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/test/testbin"
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
	testbin.Eventually(t, 30*time.Second, "moat check saying who is asked", func() error {
		m := asked.FindStringSubmatch(p.Output())
		if m == nil {
			return fmt.Errorf("output so far: %q", p.Output())
		}
		id = m[1]
		return nil
	})
	if !strings.Contains(p.Output(), "waiting for a person to approve (exec.inline-code") {
		t.Errorf("no reason given: %q", p.Output())
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
	case <-p.Done:
	case <-time.After(30 * time.Second):
		t.Fatal("moat check still waits after the approval")
	}
	if p.Err != nil || !strings.Contains(p.Output(), "ALLOW") || !strings.Contains(p.Output(), "approval.granted") {
		t.Fatalf("moat check after the approval: %v\n%s", p.Err, p.Output())
	}
}

// TestPromptingRunsHoldNothing: more prompting `moat run`s than sandboxd
// has run slots leave other runs running; each says who is asked; when
// their callers are killed, their approvals end; --approval never denies
// at once.
func TestPromptingRunsHoldNothing(t *testing.T) {
	e := newEnv(t)
	_, url := startBus(t, e)
	start(t, e.cmd("profiled"))
	start(t, e.cmd("policyd", "--approval-timeout", "10m"))
	start(t, e.cmd("sandboxd", "--max-runs", "2"))
	c := dialWait(t, e, url)
	waitService(t, c, "sandboxd", 1)
	approver := dialAs(t, e, url, home.RoleApprover)

	var waiting []*proc
	for i := 0; i < 8; i++ {
		r := e.cmd("moat", "run", "--", "python3", "-c", "print(1)")
		r.Dir = e.ws
		waiting = append(waiting, start(t, r))
	}
	pending := func(n int) func() error {
		return func() error {
			l, err := approver.Approvals(context.Background(), 200*time.Millisecond)
			if err != nil || len(l) != n {
				return fmt.Errorf("%d approvals pending (%v), want %d", len(l), err, n)
			}
			return nil
		}
	}
	testbin.Eventually(t, 60*time.Second, "eight approvals pending", pending(8))
	for i := 0; i < 3; i++ {
		r := e.cmd("moat", "run", "--", "echo", "beside")
		r.Dir = e.ws
		out, err := r.CombinedOutput()
		if err != nil || string(out) != "beside\n" {
			t.Fatalf("run %d beside eight waiting approvals: %v\n%s", i, err, out)
		}
	}
	testbin.Eventually(t, 30*time.Second, "every waiting run saying who is asked", func() error {
		for _, p := range waiting {
			if !strings.Contains(p.Output(), "moat approve ") {
				return fmt.Errorf("a waiting run printed %q", p.Output())
			}
		}
		return nil
	})
	r := e.cmd("moat", "run", "--approval", "never", "--", "python3", "-c", "print(1)")
	r.Dir = e.ws
	out, err := r.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 77 || !strings.Contains(string(out), "approval-never") {
		t.Fatalf("moat run --approval never: %v\n%s", err, out)
	}
	for _, p := range waiting {
		p.Kill()
	}
	testbin.Eventually(t, 60*time.Second, "the approvals of killed callers ended", pending(0))
}

// TestRunEnvironmentJudged: what `moat run --env` sets reaches the command
// as if written before it, so policyd judges it so: a variable that makes
// programs load code is a prompt (under --approval never, a refusal, and
// the command does not run), while an ordinary one changes nothing.
func TestRunEnvironmentJudged(t *testing.T) {
	e, _, _ := runStack(t)
	marker := filepath.Join(e.ws, "ran")
	run := func(env string) (string, error) {
		r := e.cmd("moat", "run", "--profile", "workspace-write", "--approval", "never", "--env", env, "--", "touch", marker)
		r.Dir = e.ws
		out, err := r.CombinedOutput()
		return string(out), err
	}
	out, err := run("LD_PRELOAD=" + filepath.Join(e.ws, "x.so"))
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 77 || !strings.Contains(out, "LD_PRELOAD") {
		t.Fatalf("moat run --env LD_PRELOAD=…: %v\n%s", err, out)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("the refused command ran: %v", err)
	}
	// moat check judges it as moat run does.
	chk := e.cmd("moat", "check", "--profile", "workspace-write", "--env", "LD_PRELOAD="+filepath.Join(e.ws, "x.so"), "--", "touch", marker)
	chk.Dir = e.ws
	if out, err := chk.CombinedOutput(); !strings.Contains(string(out), "LD_PRELOAD") {
		t.Fatalf("moat check --env LD_PRELOAD=…: %v\n%s", err, out)
	} else if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 78 {
		t.Fatalf("moat check --env LD_PRELOAD=…: %v, want exit 78 (a prompt)\n%s", err, out)
	}
	if out, err := run("LANG=C"); err != nil {
		t.Fatalf("moat run --env LANG=C: %v\n%s", err, out)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("the allowed command did not run: %v", err)
	}
	// An environment larger than a check's usual limit is still judged.
	os.Remove(marker)
	args := []string{"run", "--profile", "workspace-write", "--approval", "never"}
	for i := range 6 {
		args = append(args, "--env", fmt.Sprintf("BIG%d=%s", i, strings.Repeat("x", 100<<10)))
	}
	r := e.cmd("moat", append(args, "--", "touch", marker)...)
	r.Dir = e.ws
	if out, err := r.CombinedOutput(); err != nil {
		t.Fatalf("moat run with 600 KiB of env: %v\n%.400s", err, out)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("the command with 600 KiB of env did not run: %v", err)
	}
}
