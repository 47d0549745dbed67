//go:build linux

// Package cluster runs moat's real binaries as a NATS cluster on loopback:
// three busd servers joined by authenticated routes, daemons spread across
// them, worker hosts as leaf nodes, and servers killed under load.
package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/test/testbin"
)

var binDir string // the freshly built binaries

func TestMain(m *testing.M) { os.Exit(setup(m)) }

func setup(m *testing.M) int {
	dir, err := testbin.Build("moat-cluster-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	return m.Run()
}

// proc is a running child whose output is kept for failure messages.
type proc = testbin.Proc

// world is one MOAT_HOME shared by every process of a test, as the servers
// of a cluster share one MOAT_HOME's keys.
type world struct {
	t     testing.TB
	home  home.Home
	ws    string // a workspace
	vars  []string
	mu    sync.Mutex
	procs []*proc
}

func newWorld(t testing.TB) *world {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h, err := home.New(filepath.Join(dir, "moat"))
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, home: h, ws: filepath.Join(dir, "ws")}
	if err := os.MkdirAll(w.ws, 0o755); err != nil {
		t.Fatal(err)
	}
	w.vars = append(os.Environ(), "MOAT_HOME="+h.Dir)
	// A home of its own: --force, or init refuses because of a stack
	// running at the default address with other keys.
	if out, err := w.cmd("moat", "init", "--force").CombinedOutput(); err != nil {
		t.Fatalf("moat init: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, p := range w.procs {
			p.Kill()
			if t.Failed() {
				t.Logf("--- output of %s:\n%s", p.Name, testbin.Tail(p.Output(), 4000))
			}
		}
	})
	return w
}

func (w *world) cmd(bin string, args ...string) *exec.Cmd {
	c := testbin.Command(binDir, bin, args...)
	c.Env = w.vars
	return c
}

// start runs bin until the test ends (or kill); env adds variables.
func (w *world) start(name string, env []string, bin string, args ...string) *proc {
	w.t.Helper()
	c := w.cmd(bin, args...)
	c.Env = append(c.Env, env...)
	p, err := testbin.Start(name, c)
	if err != nil {
		w.t.Fatal(err)
	}
	w.mu.Lock()
	w.procs = append(w.procs, p)
	w.mu.Unlock()
	return p
}

// daemon runs a moat daemon connected to the servers at bus.
func (w *world) daemon(name, bin, bus string, args ...string) *proc {
	return w.start(name, []string{"MOAT_BUS=" + bus}, bin, args...)
}

// dial connects as role to bus (a comma-separated list).
func (w *world) dial(role, bus string) *client.Client {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{URL: bus, Role: role, Wait: 30 * time.Second, Timeout: 10 * time.Second}.Fill(w.home))
	if err != nil {
		w.t.Fatalf("dial %s as %s: %v", bus, role, err)
	}
	w.t.Cleanup(c.Close)
	return c
}
