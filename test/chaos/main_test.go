//go:build linux

// Package chaos runs moat's real binaries under load while it kills and
// stops each daemon and busd in turn, with two copies of each stateless
// daemon, and then counts: every run a caller was answered for is on record
// exactly once (decision and exit), every run allowed on record has its end
// on record unless its sandboxd was killed outright, and every caller got
// an answer or a clear error.
package chaos

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binDir string

func TestMain(m *testing.M) { os.Exit(setup(m)) }

func setup(m *testing.M) int {
	dir, err := os.MkdirTemp("", "moat-chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	build := exec.Command("go", "build", "-o", dir+"/", "./cmd/...")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build binaries: %v\n%s", err, out)
		return 1
	}
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

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
