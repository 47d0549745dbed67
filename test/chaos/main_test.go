//go:build linux

// Package chaos runs moat's real binaries under load while it kills and
// stops each daemon and busd, with two copies of each stateless daemon
// (auditd keeps one store and its anchor: one copy), and then counts.
//
// TestFaultsUnderLoad goes phase by phase, one fault each (every daemon
// and busd SIGKILLed, and separately SIGTERMed, and started again), while
// runs through the Go client and `moat run`, checks and audit events flow;
// with the stack drained it reads the store offline and fails on any of:
//
//   - an audit event whose publish was acked not stored exactly once;
//   - a run that started (its marker file exists) without its allow
//     decision and its exit (or run.failed) on record, or a marker with no
//     allow decision;
//   - a run answered exit 0 without its marker, a check answered allow
//     without its allow decision on record;
//   - a caller with neither an answer nor a clear error (a table by code
//     is logged), or one in flight at a SIGTERM left unanswered;
//   - verify, offline and live, not OK.
//
// TestChaos sends the faults of a round three seconds apart, each
// process restarted by a supervisor as soon as it exits, so a fault may
// strike while the stack recovers from the one before.
//
// docs/reliability.md lists the faults, the guarantees and the outcome.
package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moatsec/moat/test/testbin"
)

var binDir string

func TestMain(m *testing.M) { os.Exit(setup(m)) }

func setup(m *testing.M) int {
	dir, err := testbin.Build("moat-chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	return m.Run()
}

// daemon is one supervised process: restarted whenever it exits, as
// systemd's Restart=always would, until the test ends.
type daemon struct {
	name string
	args []string
	env  []string
	mu   sync.Mutex
	cmd  *exec.Cmd
	log  strings.Builder
	runs int
}

func (d *daemon) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.Write(p)
}

func (d *daemon) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// supervise runs d until stop is closed; the caller waits on wg.
func (d *daemon) supervise(t *testing.T, stop <-chan struct{}, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c := exec.Command(filepath.Join(binDir, strings.SplitN(d.name, ".", 2)[0]), d.args...)
			c.Env, c.Stdout, c.Stderr = d.env, d, d
			c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
			if err := c.Start(); err != nil {
				t.Errorf("start %s: %v", d.name, err)
				return
			}
			d.mu.Lock()
			d.cmd, d.runs = c, d.runs+1
			d.mu.Unlock()
			exited := make(chan struct{})
			go func() { c.Wait(); close(exited) }()
			select {
			case <-exited:
			case <-stop:
				c.Process.Signal(syscall.SIGTERM)
				select {
				case <-exited:
				case <-time.After(10 * time.Second):
					syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
					<-exited
				}
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
}

// signal sends sig to d's current process.
func (d *daemon) signal(sig syscall.Signal) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd != nil && d.cmd.Process != nil {
		d.cmd.Process.Signal(sig)
	}
}

// proc is a running child whose output is kept for failure messages.
type proc = testbin.Proc
