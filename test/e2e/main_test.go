//go:build linux

// Package e2e runs moat's real binaries end to end: busd and the daemons as
// child processes on random ports, the moat CLI, the real nats CLI and the
// real foreman running the repository's Procfile.
package e2e

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/test/testbin"
)

var (
	binDir   string // the freshly built binaries
	repoRoot string
)

func TestMain(m *testing.M) {
	os.Exit(setup(m))
}

func setup(m *testing.M) int {
	root, err := filepath.Abs("../..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	repoRoot = root
	dir, err := testbin.Build("moat-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	return m.Run()
}

// tool finds an external program the tests need; its absence is a failure
// with the command that installs it, never a skip.
func tool(t testing.TB, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed: %s (.ci/run does this)", name, install)
	}
	return p
}

func natsCLI(t testing.TB) string {
	return tool(t, "nats", "go install github.com/nats-io/natscli/nats@v0.5.0")
}

// env is a MOAT_HOME made by the real `moat init`, plus a workspace.
type env struct {
	home string
	ws   string
	vars []string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{home: filepath.Join(dir, "moat"), ws: filepath.Join(dir, "ws")}
	if err := os.MkdirAll(e.ws, 0o755); err != nil {
		t.Fatal(err)
	}
	e.vars = append(os.Environ(), "MOAT_HOME="+e.home)
	// A home of its own: --force, or init refuses because of a stack
	// running at the default address with other keys.
	if out, err := e.cmd("moat", "init", "--force").CombinedOutput(); err != nil {
		t.Fatalf("moat init: %v\n%s", err, out)
	}
	return e
}

func (e *env) cmd(bin string, args ...string) *exec.Cmd {
	c := testbin.Command(binDir, bin, args...)
	c.Env = e.vars
	return c
}

func (e *env) setBus(url string) { e.vars = append(e.vars, "MOAT_BUS="+url) }

// proc is a running child whose output is kept for failure messages.
type proc = testbin.Proc

// start runs c until the test ends; the whole process group is killed then.
func start(t testing.TB, c *exec.Cmd) *proc {
	t.Helper()
	p, err := testbin.Start(filepath.Base(c.Path), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("output of %s:\n%s", p.Name, p.Output())
		}
	})
	return p
}

// startBus runs busd on a random port and returns its URL (busd prints it).
func startBus(t testing.TB, e *env) (*proc, string) {
	t.Helper()
	c := e.cmd("busd", "--listen", "127.0.0.1:0")
	stdout, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p, err := testbin.Start("busd", c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "nats://") {
				urls <- sc.Text()
			}
			p.Write([]byte(sc.Text() + "\n"))
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case u := <-urls:
		e.setBus(u)
		return p, u
	case <-p.Done:
		t.Fatalf("busd exited: %v\n%s", p.Err, p.Output())
	case <-time.After(15 * time.Second):
		t.Fatalf("busd printed no URL\n%s", p.Output())
	}
	return nil, ""
}
