//go:build linux

package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/moatsec/moat/test/testbin"
)

// copies is how many copies of each daemon a stack runs.
type copies map[string]int

// standard is the stack of the suite: two copies of each daemon but
// auditd, which keeps one store and its anchor.
var standard = copies{"profiled": 2, "policyd": 2, "sandboxd": 2, "auditd": 1}

// stack is busd and the daemons as child processes, sharing one MOAT_HOME
// and one workspace; any of them can be stopped and started again on the
// same port and store.
type stack struct {
	t    *testing.T
	home home.Home
	ws   string // the workspace every run writes its marker in
	url  string // busd's client URL, the same across restarts
	vars []string

	mu    sync.Mutex
	want  copies
	procs map[string]*proc // by name: busd, profiled-0, …
	all   []*proc          // every process ever started, for the cleanup
}

func newStack(t *testing.T) *stack {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h, err := home.New(filepath.Join(dir, "moat"))
	if err != nil {
		t.Fatal(err)
	}
	// A workspace outside /tmp, as real ones are (the sandbox gives each
	// run a private /tmp).
	ws, err := os.MkdirTemp("/var/tmp", "moat-chaos-ws-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(ws) })
	s := &stack{t: t, home: h, ws: ws, url: "nats://" + testbin.Addr(testbin.FreePort(t)), procs: map[string]*proc{}}
	s.vars = append(os.Environ(), "MOAT_HOME="+h.Dir, "MOAT_BUS="+s.url)
	if out, err := s.cmd("moat", "init").CombinedOutput(); err != nil {
		t.Fatalf("moat init: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, p := range s.all {
			p.Kill()
		}
		if t.Failed() {
			for name, p := range s.procs {
				t.Logf("--- output of %s:\n%s", name, testbin.Tail(p.Output(), 3000))
			}
		}
	})
	return s
}

func (s *stack) cmd(bin string, args ...string) *exec.Cmd {
	c := testbin.Command(binDir, bin, args...)
	c.Env = s.vars
	return c
}

// start runs the named process (busd, or a daemon's copy such as
// policyd-1), again if it ran before.
func (s *stack) start(name string) *proc {
	s.t.Helper()
	var c *exec.Cmd
	switch bin := binOf(name); bin {
	case "busd":
		c = s.cmd("busd", "--listen", s.url[len("nats://"):])
	default:
		c = s.cmd(bin)
	}
	p, err := testbin.Start(name, c)
	if err != nil {
		s.t.Fatal(err)
	}
	s.mu.Lock()
	if old := s.procs[name]; old != nil {
		p.Write([]byte(testbin.Tail(old.Output(), 2000) + "\n--- started again\n"))
	}
	s.procs[name] = p
	s.all = append(s.all, p)
	s.mu.Unlock()
	return p
}

func (s *stack) proc(name string) *proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.procs[name]
}

// binOf is the binary of a process name: policyd-1 → policyd.
func binOf(name string) string {
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '-' {
			return name[:i]
		}
	}
	return name
}

// up starts busd and want's copies of each daemon, and waits until all
// answer.
func (s *stack) up(want copies) {
	s.want = want
	s.start("busd")
	for _, name := range s.daemonNames() {
		s.start(name)
	}
	s.ready(60 * time.Second)
}

// daemonNames lists the daemons' copies: policyd-0, policyd-1, ….
func (s *stack) daemonNames() []string {
	var out []string
	for name, n := range s.want {
		for i := range n {
			out = append(out, fmt.Sprintf("%s-%d", name, i))
		}
	}
	sort.Strings(out)
	return out
}

// ready waits until every daemon answers with all its copies.
func (s *stack) ready(within time.Duration) {
	s.t.Helper()
	c := s.dial(home.RoleClient)
	defer c.Close()
	testbin.Eventually(s.t, within, "every daemon answering with all its copies", func() error {
		st, err := c.Status(context.Background(), 300*time.Millisecond)
		if err != nil {
			return err
		}
		got := map[string]int{}
		for _, sv := range st.Services {
			got[sv.Name] = sv.Instances
		}
		for name, n := range s.want {
			if got[name] != n {
				return fmt.Errorf("services %v", got)
			}
		}
		return nil
	})
}

// dial connects as role, waiting for a bus that is (re)starting. The
// client reconnects by itself when busd comes back.
func (s *stack) dial(role string) *client.Client {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{URL: s.url, Role: role, Wait: 30 * time.Second, Timeout: 10 * time.Second}.Fill(s.home))
	if err != nil {
		s.t.Fatalf("dial %s as %s: %v", s.url, role, err)
	}
	return c
}

// upOne starts one copy of every daemon and returns a client connection
// (closed with the test) once policyd answers checks: $SRV.PING answers a
// moment before the endpoints do.
func (s *stack) upOne() *client.Client {
	s.t.Helper()
	s.up(copies{"profiled": 1, "policyd": 1, "sandboxd": 1, "auditd": 1})
	c := s.dial(home.RoleClient)
	s.t.Cleanup(c.Close)
	testbin.Eventually(s.t, 30*time.Second, "policyd answering checks", func() error {
		d := c.Check(context.Background(), &wire.CheckRequest{Argv: []string{"true"}, Workspace: s.ws, Cwd: s.ws, Profile: wire.RefName("workspace-write")})
		if d.Verdict != wire.VerdictAllow {
			return fmt.Errorf("%s %+v", d.Verdict, d.Reasons)
		}
		return nil
	})
	return c
}
