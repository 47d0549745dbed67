//go:build linux

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moatsec/moat/test/testbin"
)

// shellStatus is the status a shell reports for a process that ended as ps
// did: its exit code, or 128 + the signal that killed it.
func shellStatus(ps *exec.Cmd) int {
	ws := ps.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// TestRunSignalReachesTheCommand sends SIGINT, SIGTERM and SIGHUP to
// `moat run` and `moat sh` as a terminal or a supervisor would: the
// command's process group gets the signal first (its trap runs and says
// so), and the status is the one a shell gives for the same command run
// without moat — 130, 143, 129 for a command the signal ends, the trap's
// own code for one that exits; one that ignores it is killed after a short
// grace (137). Issue 9: Ctrl-C of `moat run` gave 137, the
// command never saw the SIGINT.
func TestRunSignalReachesTheCommand(t *testing.T) {
	e, _, _ := runStack(t)
	cases := []struct {
		name   string
		sig    syscall.Signal
		sh     bool
		script string // %s: the sleep's seconds
		want   int
	}{
		{"SIGINT, the trap re-raises", syscall.SIGINT, false, `trap 'echo saw-INT; trap - INT; kill -INT $$' INT; sleep %s & wait`, 130},
		{"SIGINT, the trap exits 3", syscall.SIGINT, false, `trap 'echo saw-INT; exit 3' INT; sleep %s & wait`, 3},
		{"SIGTERM", syscall.SIGTERM, false, `trap 'echo saw-TERM; trap - TERM; kill -TERM $$' TERM; sleep %s & wait`, 143},
		{"SIGHUP", syscall.SIGHUP, false, `trap 'echo saw-HUP; trap - HUP; kill -HUP $$' HUP; sleep %s & wait`, 129},
		{"moat sh, SIGINT", syscall.SIGINT, true, `trap 'echo saw-INT; trap - INT; kill -INT $$' INT; sleep %s & wait`, 130},
		// Ignored: killed once the grace (wire.RunSignalGrace) is over.
		{"SIGINT ignored", syscall.SIGINT, false, `trap '' INT; sleep %s & wait; echo saw-INT`, 137},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := sec(3100 + i)
			script := fmt.Sprintf(tc.script, n)
			var cmd *exec.Cmd
			if tc.sh {
				cmd = e.cmd("moat", "sh", "-c", script)
			} else {
				cmd = e.cmd("moat", "run", "--", "bash", "-c", script)
			}
			cmd.Dir = e.ws
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if t.Failed() {
					cmd.Process.Kill()
					t.Logf("moat's stderr:\n%s", errb.String())
				}
			}()
			waitPids(t, true, "the command runs", []string{"sleep", n})
			cmd.Process.Signal(tc.sig)
			waitPids(t, false, "the tree is gone after "+tc.sig.String(), []string{"sleep", n})
			cmd.Wait()
			saw := map[syscall.Signal]string{syscall.SIGINT: "saw-INT", syscall.SIGTERM: "saw-TERM", syscall.SIGHUP: "saw-HUP"}[tc.sig]
			if strings.Contains(out.String(), saw) != (tc.want != 137) {
				t.Errorf("the command's trap did not run (stdout %q, want %s)\n%s", out.String(), saw, errb.String())
			}
			if got := shellStatus(cmd); got != tc.want {
				t.Errorf("status %d (%v), want %d as a shell gives\n%s", got, cmd.ProcessState, tc.want, errb.String())
			}
		})
	}
}

// TestRunSignalWhileAsked: Ctrl-C of `moat run` while a person is asked
// whether its command may run (a signal before the command starts) cancels
// the run: moat run ends, the approval is gone, and the command never runs.
func TestRunSignalWhileAsked(t *testing.T) {
	e := newEnv(t)
	_, url := startBus(t, e)
	start(t, e.cmd("profiled"))
	start(t, e.cmd("policyd", "--approval-timeout", "2m"))
	start(t, e.cmd("sandboxd"))
	c := dialWait(t, e, url)
	waitService(t, c, "sandboxd", 1)

	marker := filepath.Join(e.ws, "ran")
	run := e.cmd("moat", "run", "--profile", "workspace-write", "--", "python3", "-c", "open('ran', 'w')")
	run.Dir = e.ws
	p := start(t, run)
	asked := regexp.MustCompile(`moat approve (\S+) or moat deny`)
	var id string
	testbin.Eventually(t, 30*time.Second, "moat run saying who is asked", func() error {
		m := asked.FindStringSubmatch(p.Output())
		if m == nil {
			return fmt.Errorf("output so far: %q", p.Output())
		}
		id = m[1]
		return nil
	})
	p.Cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.Done:
	case <-time.After(20 * time.Second):
		t.Fatalf("moat run still waits 20 s after SIGINT:\n%s", p.Output())
	}
	if out, err := e.cmd("moat", "approve", id).CombinedOutput(); err == nil {
		t.Errorf("the approval was still pending after moat run's SIGINT:\n%s", out)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatalf("the command ran after SIGINT and an approval:\n%s", p.Output())
	}
}
