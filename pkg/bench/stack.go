package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/home"
)

// Daemons are the services a stack runs, in start order.
var Daemons = []string{"profiled", "policyd", "sandboxd", "auditd"}

// Stack is the stack under test: one benchd started from ./bin
// (embedded: every daemon a child process on a free port), or a running one.
type Stack struct {
	BinDir string
	Home   home.Home
	URL    string
	owned  bool
	mu     sync.Mutex
	procs  map[string][]*exec.Cmd
	base   string
}

// StartStack starts busd and copies[name] of each daemon (default one)
// from binDir with a fresh MOAT_HOME, and waits until all answer.
func StartStack(ctx context.Context, binDir string, copies map[string]int) (*Stack, error) {
	base, err := os.MkdirTemp("", "moat-bench-")
	if err != nil {
		return nil, err
	}
	h, _ := home.New(filepath.Join(base, "moat"))
	s := &Stack{BinDir: binDir, Home: h, owned: true, procs: map[string][]*exec.Cmd{}, base: base}
	// A home of its own for a bus of its own, on a port not known yet:
	// --force, or init would refuse because of whatever stack runs at
	// MOAT_BUS or the default address (a user's, with other keys).
	if out, err := s.command("moat", "init", "--force").CombinedOutput(); err != nil {
		s.Close()
		return nil, fmt.Errorf("moat init: %v: %s", err, out)
	}
	if err := s.startBus(); err != nil {
		s.Close()
		return nil, err
	}
	for _, d := range Daemons {
		n := copies[d]
		if n == 0 {
			n = 1
		}
		for i := 0; i < n; i++ {
			if _, err := s.StartDaemon(d); err != nil {
				s.Close()
				return nil, err
			}
		}
	}
	if err := s.WaitFor(ctx, copies, 30*time.Second); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Attach uses a running stack at url with the keys in h.
func Attach(url string, h home.Home) *Stack {
	return &Stack{URL: url, Home: h, procs: map[string][]*exec.Cmd{}}
}

func (s *Stack) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.BinDir, name), args...)
	cmd.Env = append(os.Environ(), "MOAT_HOME="+s.Home.Dir)
	if s.URL != "" {
		cmd.Env = append(cmd.Env, "MOAT_BUS="+s.URL)
	}
	cmd.SysProcAttr = procAttr()
	return cmd
}

func (s *Stack) startBus() error {
	cmd := s.command("busd", "--listen", "127.0.0.1:0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start busd: %w", err)
	}
	s.procs["busd"] = append(s.procs["busd"], cmd)
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "nats://") {
				urls <- sc.Text()
			}
		}
	}()
	select {
	case s.URL = <-urls:
		return nil
	case <-time.After(15 * time.Second):
		return errors.New("busd printed no URL within 15s")
	}
}

// StartDaemon starts one more copy of name.
func (s *Stack) StartDaemon(name string) (*exec.Cmd, error) {
	args := []string{}
	switch name {
	case "policyd":
		args = append(args, "--approval-timeout", "10s")
	case "sandboxd":
		args = append(args, "--max-runs", "64")
	}
	cmd := s.command(name, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s.mu.Lock()
	s.procs[name] = append(s.procs[name], cmd)
	s.mu.Unlock()
	go cmd.Wait()
	return cmd, nil
}

// SetCopies starts or stops copies of name until n run.
func (s *Stack) SetCopies(ctx context.Context, name string, n int) error {
	s.mu.Lock()
	for len(s.procs[name]) > n {
		last := s.procs[name][len(s.procs[name])-1]
		s.procs[name] = s.procs[name][:len(s.procs[name])-1]
		syscall.Kill(-last.Process.Pid, syscall.SIGKILL)
	}
	have := len(s.procs[name])
	s.mu.Unlock()
	for i := have; i < n; i++ {
		if _, err := s.StartDaemon(name); err != nil {
			return err
		}
	}
	return s.WaitFor(ctx, map[string]int{name: n}, 30*time.Second)
}

// WaitFor waits until each service named in copies answers with that many
// instances, and every other daemon with at least one.
func (s *Stack) WaitFor(ctx context.Context, copies map[string]int, within time.Duration) error {
	c, err := s.Client(home.RoleBenchd)
	if err != nil {
		return err
	}
	defer c.Close()
	deadline := time.Now().Add(within)
	for {
		st, err := c.Status(ctx, 25*time.Millisecond) // short: it polls until all answer
		if err == nil {
			got := map[string]int{}
			for _, sv := range st.Services {
				got[sv.Name] = sv.Instances
			}
			ok := true
			for _, d := range Daemons {
				if want, named := copies[d]; named && got[d] != want || !named && got[d] < 1 {
					ok = false
				}
			}
			if ok {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("services up: %v, want %v", got, copies)
			}
		} else if time.Now().After(deadline) {
			return err
		}
	}
}

// Client connects with role's key.
func (s *Stack) Client(role string) (*client.Client, error) {
	return client.Dial(context.Background(), client.Options{URL: s.URL, Role: role, Wait: 10 * time.Second, Timeout: 30 * time.Second}.Fill(s.Home))
}

// ProcStats reads every daemon's memory and CPU.
func (s *Stack) ProcStats() []ProcStat {
	if !s.owned {
		return findProcs(append([]string{"busd"}, Daemons...)...)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ProcStat
	for _, name := range append([]string{"busd"}, Daemons...) {
		for _, cmd := range s.procs[name] {
			if st, ok := readProc(cmd.Process.Pid); ok {
				st.Name = name
				out = append(out, st)
			}
		}
	}
	return out
}

// Close stops what the stack started and removes its files.
func (s *Stack) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, cmds := range s.procs {
		for _, c := range cmds {
			syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		}
	}
	s.procs = map[string][]*exec.Cmd{}
	if s.base != "" {
		os.RemoveAll(s.base)
	}
}
