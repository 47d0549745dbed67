package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// failover runs policy checks against a three-server cluster of its own
// (the binaries of the stack under test, a fresh MOAT_HOME), SIGKILLs the
// server leading MOAT_AUDIT a third of the way through, and reports the
// gap: the longest time in which no caller got an answer. Every caller is
// given all three servers and fails over by itself.
func failover(ctx context.Context, e *Env) ([]Result, error) {
	if e.Stack.BinDir == "" {
		return nil, errors.New("failover starts a cluster of its own from the binaries: run benchd on its own stack, not attached")
	}
	e.progress("failover: three servers")
	c, err := startCluster(ctx, e.Stack.BinDir, 3)
	if err != nil {
		return nil, err
	}
	defer c.close()
	js, err := jetstream.New(c.admin.Conn())
	if err != nil {
		return nil, err
	}
	leader, err := c.audit(ctx, js, 3)
	if err != nil {
		return nil, err
	}
	p, err := c.admin.Resolve(ctx, &wire.ResolveRequest{Profile: "workspace-write", Workspace: e.WS})
	if err != nil {
		return nil, err
	}
	conc := max(e.Opts.Concurrency, 1)
	clients := make([]*client.Client, conc)
	for i := range clients {
		o := client.Options{URL: c.urls(), Role: home.RoleBenchd, Timeout: 10 * time.Second}.Fill(c.home)
		if clients[i], err = client.Dial(ctx, o); err != nil {
			return nil, err
		}
		defer clients[i].Close()
	}
	e.progress(fmt.Sprintf("failover: %d callers, %s killed at %s", conc, leader, e.Opts.Duration/3))
	rec := NewRecorder(fmt.Sprintf("check, %d callers, the audit leader killed", conc))
	var (
		mu     sync.Mutex
		lastOK = time.Now()
		gap    time.Duration
		wg     sync.WaitGroup
	)
	lctx, cancel := context.WithTimeout(ctx, e.Opts.Duration)
	defer cancel()
	for _, cl := range clients {
		wg.Go(func() {
			for lctx.Err() == nil {
				err := rec.Time(func() error {
					d := cl.Check(lctx, &wire.CheckRequest{Argv: []string{"git", "status"}, Profile: wire.RefResolved(p)})
					if d.Verdict != wire.VerdictAllow {
						return wire.Errorf(wire.CodeUnavailable, "%s: %v", d.Verdict, d.Reasons)
					}
					return nil
				})
				if err == nil {
					mu.Lock()
					now := time.Now()
					gap, lastOK = max(gap, now.Sub(lastOK)), now
					mu.Unlock()
				}
			}
		})
	}
	select {
	case <-time.After(e.Opts.Duration / 3):
		c.kill(leader)
	case <-lctx.Done():
	}
	wg.Wait()
	rec.Stop()
	res := rec.Result("failover")
	res.Extra = map[string]float64{"gap_ms": float64(gap.Microseconds()) / 1000}
	res.Note = "gap_ms: the longest time without any answer, around the SIGKILL of the server leading MOAT_AUDIT"
	return []Result{res}, nil
}

// cluster is a cluster of busd with one copy of each daemon, each daemon
// given every server.
type cluster struct {
	bin, base string
	home      home.Home
	names     []string
	ports     []int // client ports
	procs     map[string]*exec.Cmd
	admin     *client.Client
}

func startCluster(ctx context.Context, bin string, n int) (*cluster, error) {
	base, err := os.MkdirTemp("", "moat-bench-cluster-")
	if err != nil {
		return nil, err
	}
	h, _ := home.New(filepath.Join(base, "moat"))
	c := &cluster{bin: bin, base: base, home: h, procs: map[string]*exec.Cmd{}}
	if out, err := c.command("moat", "init", "--force").CombinedOutput(); err != nil { // a home of its own, as in StartStack
		c.close()
		return nil, fmt.Errorf("moat init: %v: %s", err, out)
	}
	var routes []string
	for i := range n {
		c.names = append(c.names, fmt.Sprintf("busd-%d", i))
		c.ports = append(c.ports, freePort())
		routes = append(routes, fmt.Sprintf("127.0.0.1:%d", freePort()))
	}
	for i, name := range c.names {
		err := c.start(name, "busd", "--name", name, "--listen", fmt.Sprintf("127.0.0.1:%d", c.ports[i]),
			"--cluster", "moat", "--cluster-listen", routes[i], "--routes", strings.Join(routes, ","))
		if err != nil {
			c.close()
			return nil, err
		}
	}
	for _, d := range Daemons {
		if err := c.start(d, d, "--bus", c.urls()); err != nil {
			c.close()
			return nil, err
		}
	}
	o := client.Options{URL: c.urls(), Role: home.RoleAdmin, Wait: 30 * time.Second}.Fill(h)
	if c.admin, err = client.Dial(ctx, o); err != nil {
		c.close()
		return nil, err
	}
	if err := waitServices(ctx, c.admin, 60*time.Second); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func (c *cluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Env = append(os.Environ(), "MOAT_HOME="+c.home.Dir)
	cmd.SysProcAttr = procAttr()
	return cmd
}

func (c *cluster) start(key, name string, args ...string) error {
	cmd := c.command(name, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	c.procs[key] = cmd
	return nil
}

func (c *cluster) urls() string {
	var u []string
	for _, p := range c.ports {
		u = append(u, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	return strings.Join(u, ",")
}

// audit waits until MOAT_AUDIT has replicas current copies and returns its leader.
func (c *cluster) audit(ctx context.Context, js jetstream.JetStream, replicas int) (string, error) {
	deadline := time.Now().Add(90 * time.Second)
	for {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		s, err := js.Stream(actx, wire.AuditStream)
		cancel()
		if err == nil {
			info := s.CachedInfo()
			current := 0
			if info.Cluster != nil {
				for _, r := range info.Cluster.Replicas {
					if r.Current {
						current++
					}
				}
				if info.Config.Replicas == replicas && current == replicas-1 && info.Cluster.Leader != "" {
					return info.Cluster.Leader, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s not at %d current copies within 90s (%v)", wire.AuditStream, replicas, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// kill SIGKILLs one process (its group).
func (c *cluster) kill(key string) {
	if cmd := c.procs[key]; cmd != nil && cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		delete(c.procs, key)
	}
}

func (c *cluster) close() {
	if c.admin != nil {
		c.admin.Close()
	}
	for key := range c.procs {
		c.kill(key)
	}
	os.RemoveAll(c.base)
}

// waitServices waits until every daemon answers $SRV.PING.
func waitServices(ctx context.Context, c *client.Client, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		st, err := c.Status(ctx, 300*time.Millisecond)
		if err == nil && len(st.Missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("services not all up within %s: %v %v", within, err, st)
		}
	}
}

// freePort is a loopback port that was free a moment ago.
func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
