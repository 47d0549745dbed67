//go:build linux

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moatsec/moat/test/testbin"
)

// TestExecInit runs the real `sandboxd exec`: the command's own signals
// kill it with the status it has outside, and a SIGTERM to sandboxd exec
// reaches the command, whose trap leaves its mark on disk.
func TestExecInit(t *testing.T) {
	e := newEnv(t)
	exec1 := func(args ...string) *exec.Cmd {
		c := e.cmd("sandboxd", append([]string{"exec", "--profile", "workspace-write", "--workspace", e.ws, "--"}, args...)...)
		c.Dir = e.ws
		return c
	}
	err := exec1("bash", "-c", "kill -9 $$").Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 137 {
		t.Errorf("kill -9 $$ in the sandbox: %v, want exit status 137 as outside", err)
	}

	marker := filepath.Join(e.ws, "marker")
	c := exec1("bash", "-c", `trap 'echo got-term > marker; exit 3' TERM; echo ready; while :; do sleep 0.05; done`)
	p := start(t, c)
	testbin.Eventually(t, 30*time.Second, "the command's ready line", func() error {
		if !strings.Contains(p.Output(), "ready\n") {
			return fmt.Errorf("output so far %q", p.Output())
		}
		return nil
	})
	syscall.Kill(c.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.Done:
	case <-time.After(30 * time.Second):
		t.Fatal("sandboxd exec still runs 30s after SIGTERM")
	}
	if ee, ok := p.Err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Errorf("sandboxd exec after SIGTERM: %v, want the trap's exit 3\n%s", p.Err, p.Output())
	}
	if b, err := os.ReadFile(marker); err != nil || string(b) != "got-term\n" {
		t.Errorf("marker: %q %v, want the trap's line", b, err)
	}
}
