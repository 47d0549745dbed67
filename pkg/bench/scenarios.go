package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moatsec/moat/pkg/audit"
	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// Options size a scenario.
type Options struct {
	Count       int           // operations (or tasks per agent)
	Duration    time.Duration // for rate-driven scenarios
	Concurrency int           // callers at once
}

// Env is what a scenario runs against.
type Env struct {
	Stack    *Stack
	WS       string // a workspace (a git repository outside /tmp)
	Opts     Options
	Progress func(step string)
}

func (e *Env) progress(step string) {
	if e.Progress != nil {
		e.Progress(step)
	}
}

// Scenario measures one thing and returns its series.
type Scenario func(ctx context.Context, e *Env) ([]Result, error)

// Scenarios by name, and the order of the standard suite.
var (
	Scenarios = map[string]Scenario{
		"coldstart": coldstart, "resolve": resolve, "check": check, "run": run, "agents": agents,
		"sequential": sequential, "throughput": throughput, "audit": auditFlood, "scaling": scaling, "shell": shell,
		"failover": failover, // not in the standard suite: it starts a cluster of its own (failover.go)
	}
	Order = []string{"coldstart", "resolve", "check", "run", "shell", "sequential", "agents", "throughput", "audit", "scaling"}
)

// NewWorkspace makes a workspace for runs: outside /tmp, with a git repository.
func NewWorkspace() (string, error) {
	ws, err := os.MkdirTemp("/var/tmp", "moat-bench-ws-")
	if err != nil {
		return "", err
	}
	os.WriteFile(filepath.Join(ws, "README.md"), []byte("# bench\nfind me\n"), 0o644)
	os.WriteFile(filepath.Join(ws, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644)
	if out, err := exec.Command("git", "init", "-q", ws).CombinedOutput(); err != nil {
		return "", fmt.Errorf("git init: %v: %s", err, out)
	}
	return ws, nil
}

// fanOut runs n operations over c workers, each recorded.
func fanOut(ctx context.Context, n, c int, rec *Recorder, op func(i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < max(c, 1); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				rec.Time(func() error { return op(i) })
			}
		}()
	}
	wg.Wait()
	rec.Stop()
}

func coldstart(ctx context.Context, e *Env) ([]Result, error) {
	if e.Stack.BinDir == "" {
		return nil, errors.New("coldstart starts daemons: run benchd with --embedded")
	}
	c, err := e.Stack.Client(home.RoleBenchd)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var out []Result
	for _, name := range Daemons {
		e.progress("coldstart " + name)
		rec := NewRecorder(name)
		for i := 0; i < max(e.Opts.Count/10, 3); i++ {
			// The instances already running are listed before the clock
			// starts: the new one is the first id not among them.
			before := map[string]bool{}
			ids, _ := pingAll(c.Conn(), name, 30*time.Millisecond)
			for _, id := range ids {
				before[id] = true
			}
			t0 := time.Now()
			cmd, err := e.Stack.StartDaemon(name)
			if err != nil {
				return nil, err
			}
			err = pingUntil(ctx, c.Conn(), name, before, cmd.Process.Pid, 10*time.Second)
			rec.Observe(time.Since(t0), err)
			e.Stack.SetCopies(ctx, name, 1)
		}
		rec.Stop()
		out = append(out, rec.Result("coldstart"))
	}
	// The whole stack: busd and every daemon, from nothing to all answering.
	e.progress("coldstart stack")
	rec := NewRecorder("stack")
	for i := 0; i < 3; i++ {
		t0 := time.Now()
		s, err := StartStack(ctx, e.Stack.BinDir, nil)
		rec.Observe(time.Since(t0), err)
		if s != nil {
			s.Close()
		}
	}
	rec.Stop()
	return append(out, rec.Result("coldstart")), nil
}

// pingUntil waits until the instance started as pid answers $SRV.PING:
// the new instance is the one whose id is not in before.
func pingUntil(ctx context.Context, nc *nats.Conn, name string, before map[string]bool, pid int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		ids, _ := pingAll(nc, name, 2*time.Millisecond)
		for _, id := range ids {
			if !before[id] {
				return nil
			}
		}
	}
	return wire.Errorf(wire.CodeTimeout, "%s (pid %d) did not answer within %s", name, pid, within)
}

func pingAll(nc *nats.Conn, name string, wait time.Duration) ([]string, error) {
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	nc.PublishRequest("$SRV.PING."+name, inbox, nil)
	var ids []string
	deadline := time.Now().Add(wait)
	for {
		m, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			return ids, nil
		}
		var p wire.PingReply
		if json.Unmarshal(m.Data, &p) == nil {
			ids = append(ids, p.ID)
		}
	}
}

func resolve(ctx context.Context, e *Env) ([]Result, error) {
	c, err := e.Stack.Client(home.RoleBenchd)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	e.progress("resolve")
	rec := NewRecorder("resolve")
	fanOut(ctx, e.Opts.Count, e.Opts.Concurrency, rec, func(int) error {
		_, err := c.Resolve(ctx, &wire.ResolveRequest{Profile: "workspace-write", Workspace: e.WS})
		return err
	})
	return []Result{rec.Result("resolve")}, nil
}

// checkLoad runs count checks over conc callers, each its own connection.
func checkLoad(ctx context.Context, e *Env, name string, count, conc int) (Result, error) {
	c, err := e.Stack.Client(home.RoleBenchd)
	if err != nil {
		return Result{}, err
	}
	defer c.Close()
	p, err := c.Resolve(ctx, &wire.ResolveRequest{Profile: "workspace-write", Workspace: e.WS})
	if err != nil {
		return Result{}, err
	}
	clients := make([]*client.Client, max(conc, 1))
	for i := range clients {
		if clients[i], err = e.Stack.Client(home.RoleBenchd); err != nil {
			return Result{}, err
		}
		defer clients[i].Close()
	}
	rec := NewRecorder(name)
	fanOut(ctx, count, conc, rec, func(i int) error {
		cl := clients[i%len(clients)]
		d := cl.Check(ctx, &wire.CheckRequest{Argv: []string{"bash", "-c", "cat README.md | grep find | wc -l"}, Profile: wire.RefResolved(p)})
		if d.Verdict != wire.VerdictAllow {
			return wire.Errorf(wire.CodeUnavailable, "%s: %v", d.Verdict, d.Reasons)
		}
		return nil
	})
	return rec.Result("check"), nil
}

func check(ctx context.Context, e *Env) ([]Result, error) {
	e.progress("check: the ping baseline")
	ping, err := pingLoad(ctx, e, pingOne, e.Opts.Count, 1)
	if err != nil {
		return nil, err
	}
	e.progress("check, one caller")
	one, err := checkLoad(ctx, e, "one caller", e.Opts.Count, 1)
	if err != nil {
		return nil, err
	}
	e.progress(fmt.Sprintf("check, %d callers", e.Opts.Concurrency))
	many, err := checkLoad(ctx, e, fmt.Sprintf("%d callers", e.Opts.Concurrency), e.Opts.Count*4, e.Opts.Concurrency)
	if err != nil {
		return nil, err
	}
	e.progress(fmt.Sprintf("check: the ping baseline, %d callers", e.Opts.Concurrency))
	pings, err := pingLoad(ctx, e, fmt.Sprintf(pingMany, e.Opts.Concurrency), e.Opts.Count*4, e.Opts.Concurrency)
	return []Result{ping, one, many, pings}, err
}

// scalingCallers check at once in the scaling scenario.
const scalingCallers = 16

// The ping baselines' names: one caller, and as many as the check's.
const (
	pingOne  = "$SRV.PING.policyd round trip (baseline)"
	pingMany = "$SRV.PING.policyd, %d callers (baseline)"
)

// pingLoad is the bus's floor in the same run: count $SRV.PING.policyd
// round trips over conc callers, each its own connection, that a check's
// figures are read against (one caller: its latency; many: the most
// round trips a second the bus and the machine carry, whatever answers).
func pingLoad(ctx context.Context, e *Env, name string, count, conc int) (Result, error) {
	clients := make([]*client.Client, max(conc, 1))
	for i := range clients {
		var err error
		if clients[i], err = e.Stack.Client(home.RoleBenchd); err != nil {
			return Result{}, err
		}
		defer clients[i].Close()
	}
	rec := NewRecorder(name)
	fanOut(ctx, count, conc, rec, func(i int) error {
		_, err := clients[i%len(clients)].Conn().Request("$SRV.PING."+wire.ServicePolicyd, nil, 5*time.Second)
		return err
	})
	return rec.Result("check"), nil
}

// run measures /bin/true five ways, interleaved so each sees the same
// machine, with the CPU each way costs a run (see cpu.go).
func run(ctx context.Context, e *Env) ([]Result, error) {
	c, err := e.Stack.Client(home.RoleBenchd)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ways := []way{
		{name: "plain exec", op: childCPU(func() *exec.Cmd { return exec.Command("/bin/true") })},
		{name: "full pipeline", daemons: true, op: func() (time.Duration, error) {
			res, err := c.Run(ctx, &wire.RunRequest{Profile: "offline", Workspace: e.WS, Argv: []string{"/bin/true"}}, nil)
			if err == nil && res.ExitCode != 0 {
				err = wire.Errorf(wire.CodeInternal, "exit %d (%v)", res.ExitCode, res.Decision)
			}
			return 0, err
		}},
	}
	if e.Stack.BinDir != "" {
		ways = append(ways, way{name: "sandboxd exec", op: childCPU(func() *exec.Cmd {
			return e.Stack.command("sandboxd", "exec", "--profile", "offline", "--workspace", e.WS, "--", "/bin/true")
		})})
	}
	if bw, err := exec.LookPath("bwrap"); err == nil {
		ways = append(ways, way{name: "bwrap", op: childCPU(func() *exec.Cmd {
			return exec.Command(bw, "--unshare-all", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "/bin/true")
		})})
	}
	if fj, err := exec.LookPath("firejail"); err == nil {
		ways = append(ways, way{name: "firejail", op: childCPU(func() *exec.Cmd {
			return exec.Command(fj, "--quiet", "--noprofile", "--net=none", "/bin/true")
		})})
	}
	recs := make([]*Recorder, len(ways))
	for i, w := range ways {
		recs[i] = NewRecorder(w.name)
	}
	before := e.Stack.ProcStats()
	for i := 0; i < e.Opts.Count && ctx.Err() == nil; i++ {
		if i%10 == 0 {
			e.progress(fmt.Sprintf("run %d/%d", i, e.Opts.Count))
		}
		for k := range ways {
			ways[k].time(recs[k])
		}
	}
	after := e.Stack.ProcStats()
	var out []Result
	base := 0.0
	for k, w := range ways {
		recs[k].Stop()
		r := recs[k].Result("run")
		if k == 0 {
			base = r.P50
		}
		r.Extra = map[string]float64{}
		if base > 0 {
			r.Extra["x_plain_p50"] = r.P50 / base
		}
		w.cpuExtra(r, before, after)
		out = append(out, r)
	}
	cpuAgainst(out, "bwrap")
	p50Against(out, "bwrap")
	return out, nil
}

// task is one step of an agent's work.
type task struct {
	name    string
	argv    []string
	profile string
	want    string // the verdict the task should get
}

// agentTasks is a realistic mix: look around, read, search, a git status,
// write a file, a network call that is denied, a prompt a person approves.
func agentTasks(agent int) []task {
	return []task{
		{"list", []string{"ls", "-la"}, "offline", wire.VerdictAllow},
		{"read", []string{"cat", "README.md"}, "offline", wire.VerdictAllow},
		{"grep", []string{"grep", "-rn", "find", "."}, "offline", wire.VerdictAllow},
		{"git status", []string{"git", "status", "--short"}, "offline", wire.VerdictAllow},
		{"write", []string{"sh", "-c", fmt.Sprintf("echo %d > agent-%d.txt", agent, agent)}, "workspace-write", wire.VerdictAllow},
		{"denied network", []string{"curl", "-s", "https://example.com"}, "workspace-write", wire.VerdictDeny},
		{"approved prompt", []string{"python3", "-c", "print(1)"}, "workspace-write", wire.VerdictAllow},
		{"list again", []string{"ls"}, "offline", wire.VerdictAllow},
		{"read again", []string{"head", "-1", "main.go"}, "offline", wire.VerdictAllow},
		{"search", []string{"find", ".", "-name", "*.go"}, "offline", wire.VerdictAllow},
	}
}

// approver answers every approval question with allow, as a person would.
func approver(ctx context.Context, e *Env) (stop func(), err error) {
	c, err := e.Stack.Client(home.RoleBenchd)
	if err != nil {
		return nil, err
	}
	sub, err := c.Conn().Subscribe(wire.SubjectApprovalAsk+".>", func(m *nats.Msg) {
		var q wire.ApprovalAsk
		if wire.Decode(wire.JSON, m.Data, &q) == nil {
			go c.Answer(ctx, &wire.ApprovalAnswer{ID: q.ID, Verdict: wire.VerdictAllow, By: "benchd"})
		}
	})
	if err != nil {
		c.Close()
		return nil, err
	}
	c.Conn().Flush()
	return func() { sub.Unsubscribe(); c.Close() }, nil
}

// agent runs tasks tasks through the whole pipeline and records each.
func agent(ctx context.Context, e *Env, c *client.Client, id, tasks int, rec *Recorder) error {
	mix := agentTasks(id)
	for i := 0; i < tasks; i++ {
		t := mix[i%len(mix)]
		err := rec.Time(func() error {
			res, err := c.Run(ctx, &wire.RunRequest{Profile: t.profile, Workspace: e.WS, Argv: t.argv, SessionID: fmt.Sprintf("agent-%d", id)}, nil)
			if err != nil {
				return err
			}
			if res.Decision == nil || res.Decision.Verdict != t.want {
				return wire.Errorf(wire.CodeInternal, "%s: got %v", t.name, res.Decision)
			}
			return nil
		})
		if err != nil && ctx.Err() != nil {
			return err
		}
	}
	return nil
}

func agents(ctx context.Context, e *Env) ([]Result, error) {
	stop, err := approver(ctx, e)
	if err != nil {
		return nil, err
	}
	defer stop()
	tasks := max(e.Opts.Count/10, 10)
	var out []Result
	for _, n := range []int{2, 4, 8, 16} {
		e.progress(fmt.Sprintf("agents %d×%d", n, tasks))
		rec := NewRecorder(fmt.Sprintf("%d agents", n))
		var wg sync.WaitGroup
		agentTimes := make([]float64, n)
		for a := 0; a < n; a++ {
			c, err := e.Stack.Client(home.RoleBenchd)
			if err != nil {
				return nil, err
			}
			defer c.Close()
			wg.Add(1)
			go func(a int, c *client.Client) {
				defer wg.Done()
				t0 := time.Now()
				agent(ctx, e, c, a, tasks, rec)
				agentTimes[a] = time.Since(t0).Seconds() * 1000
			}(a, c)
		}
		wg.Wait()
		rec.Stop()
		r := rec.Result("agents")
		slowest := 0.0
		for _, t := range agentTimes {
			slowest = max(slowest, t)
		}
		r.Extra = map[string]float64{"agents": float64(n), "tasks_per_agent": float64(tasks), "total_ms": r.Seconds * 1000, "slowest_agent_ms": slowest}
		out = append(out, r)
	}
	return out, nil
}

func sequential(ctx context.Context, e *Env) ([]Result, error) {
	stop, err := approver(ctx, e)
	if err != nil {
		return nil, err
	}
	defer stop()
	c, err := e.Stack.Client(home.RoleBenchd)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	e.progress("sequential")
	rec := NewRecorder("one agent")
	agent(ctx, e, c, 0, e.Opts.Count, rec)
	rec.Stop()
	return []Result{rec.Result("sequential")}, nil
}

// throughput holds rising rates of runs for a while each and reports what
// each achieved; the ceiling is the last rate met with no error.
func throughput(ctx context.Context, e *Env) ([]Result, error) {
	c, err := e.Stack.Client(home.RoleBenchd)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var out []Result
	for _, rate := range []float64{100.0 / 60, 10, 25, 50, 100, 200} {
		// Long enough for several requests even at the lowest rate.
		per := max(e.Opts.Duration/5, time.Duration(float64(5*time.Second)/rate), 2*time.Second)
		e.progress(fmt.Sprintf("throughput %.1f/s", rate))
		rec := NewRecorder(fmt.Sprintf("%.1f runs/s", rate))
		// The allowed runs' wait in sandboxd's queue for a slot, its own series.
		queued := NewRecorder(fmt.Sprintf("%.1f runs/s: queue wait", rate))
		tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
		end := time.After(per)
		var wg sync.WaitGroup
	loop:
		for {
			select {
			case <-tick.C:
				wg.Add(1)
				go func() {
					defer wg.Done()
					rec.Time(func() error {
						res, err := c.Run(ctx, &wire.RunRequest{Profile: "offline", Workspace: e.WS, Argv: []string{"/bin/true"}}, nil)
						if err == nil {
							queued.Observe(time.Duration(res.QueueUS)*time.Microsecond, nil)
						}
						return err
					})
				}()
			case <-end:
				break loop
			case <-ctx.Done():
				break loop
			}
		}
		tick.Stop()
		wg.Wait()
		rec.Stop()
		r := rec.Result("throughput")
		sent := float64(r.Count + r.ErrorCount)
		r.Extra = map[string]float64{"target_per_second": rate, "achieved_per_second": float64(r.Count) / per.Seconds()}
		queued.Stop()
		out = append(out, queued.Result("throughput"), r)
		// Ticks lost to a busy sender or errors mean the rate was not held.
		if r.ErrorCount > 0 || sent < 0.9*rate*per.Seconds()-1 {
			r.Note = "ceiling passed"
			out[len(out)-1] = r
			break
		}
	}
	return out, nil
}

func auditFlood(ctx context.Context, e *Env) ([]Result, error) {
	c, err := e.Stack.Client(home.RoleBenchd)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	// The flood is timed from a store that has caught up (nothing of the
	// scenarios before it still in the stream) to one that has stored the
	// flood and caught up again: records counted while an earlier backlog
	// drains would be counted for the flood. Caught up is two readings in a
	// row with nothing in the stream and the same records (a lag auditd
	// could not read is reported as 0); it is dated by the first of them.
	caughtUp := func(enough func(*client.AuditStats) bool) (*client.AuditStats, time.Time, error) {
		var last error
		var prev *client.AuditStats
		var prevAt time.Time
		for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if err := ctx.Err(); err != nil {
				return nil, time.Time{}, err
			}
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			at := time.Now()
			st, err := c.AuditStats(sctx)
			cancel()
			switch {
			case err != nil:
				last, prev = err, nil
				continue
			case !st.Consuming:
				return nil, time.Time{}, fmt.Errorf("audit: auditd is not storing events (%s)", st.Problem)
			case st.Lag != 0 || !enough(st):
				last, prev = fmt.Errorf("%d records, %d messages not yet stored", st.Records, st.Lag), nil
				continue
			}
			if prev != nil && prev.Records == st.Records {
				return prev, prevAt, nil
			}
			prev, prevAt = st, at
		}
		return nil, time.Time{}, fmt.Errorf("audit: auditd did not catch up within 2 minutes (%v)", last)
	}
	before, _, err := caughtUp(func(*client.AuditStats) bool { return true })
	if err != nil {
		return nil, err
	}
	pub, err := audit.NewPublisher(c.Conn(), "benchd", wire.NewID())
	if err != nil {
		return nil, err
	}
	n := e.Opts.Count * 200 // enough that the store's linger at the end is a small part of it
	e.progress(fmt.Sprintf("audit %d events", n))
	rec := NewRecorder("events")
	t0 := time.Now()
	sent := 0
	for i := 0; i < n; i++ {
		ev := &wire.AuditEvent{Kind: wire.KindRunExit, Profile: "workspace-write", Argv: []string{"go", "test", "./..."},
			Cwd: "~/proj", Verdict: wire.VerdictAllow, SessionID: "bench", RequestID: wire.NewID(),
			Reasons: []wire.Reason{{Rule: "default.sandboxed", Message: "no rule names go; it runs confined by profile workspace-write"}}}
		if err := pub.PublishAsync(ev); err != nil {
			rec.Observe(0, err)
			continue
		}
		sent++
	}
	select {
	case <-pub.Acked():
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(2 * time.Minute):
		return nil, errors.New("audit: the flood's acks did not all come within 2 minutes")
	}
	acked := uint64(sent) - min(pub.Lost(), uint64(sent))
	after, end, err := caughtUp(func(st *client.AuditStats) bool { return st.Records >= before.Records+acked })
	if err != nil {
		return nil, err
	}
	elapsed := end.Sub(t0)
	stored := after.Records - before.Records
	rec.Observe(elapsed, nil)
	rec.Stop()
	r := rec.Result("audit")
	r.Count = int64(stored)
	r.PerSecond = float64(stored) / elapsed.Seconds()
	r.Extra = map[string]float64{"published": float64(n), "sent": float64(sent), "stored": float64(stored),
		"lost_acks": float64(pub.Lost()), "ratio_vs_json": after.Ratio}
	if after.Records > 0 {
		r.Extra["bytes_per_event"] = float64(after.DiskBytes) / float64(after.Records)
	}
	return []Result{r}, nil
}

func scaling(ctx context.Context, e *Env) ([]Result, error) {
	if e.Stack.BinDir == "" {
		return nil, errors.New("scaling starts copies: run benchd with --embedded")
	}
	var out []Result
	for _, n := range []int{1, 2, 4} {
		e.progress(fmt.Sprintf("scaling %d copies", n))
		for _, d := range []string{"policyd", "sandboxd"} {
			if err := e.Stack.SetCopies(ctx, d, n); err != nil {
				return nil, err
			}
		}
		r, err := checkLoad(ctx, e, fmt.Sprintf("%d copies: checks", n), e.Opts.Count*4, scalingCallers)
		if err != nil {
			return nil, err
		}
		r.Scenario, r.Extra = "scaling", map[string]float64{"copies": float64(n)}
		out = append(out, r)
		c, err := e.Stack.Client(home.RoleBenchd)
		if err != nil {
			return nil, err
		}
		rec := NewRecorder(fmt.Sprintf("%d copies: runs", n))
		fanOut(ctx, e.Opts.Count, 8, rec, func(int) error {
			_, err := c.Run(ctx, &wire.RunRequest{Profile: "offline", Workspace: e.WS, Argv: []string{"/bin/true"}}, nil)
			return err
		})
		c.Close()
		rr := rec.Result("scaling")
		rr.Extra = map[string]float64{"copies": float64(n)}
		out = append(out, rr)
	}
	for _, d := range []string{"policyd", "sandboxd"} {
		e.Stack.SetCopies(ctx, d, 1)
	}
	return out, nil
}
