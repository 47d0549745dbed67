//go:build linux

package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moatsec/moat/pkg/audit"
	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
)

// The load: runs through the Go client and through `moat run`, checks, and
// audit events, each worker on its own connection.
const (
	clientRunners = 5
	cliRunners    = 2
	checkers      = 2
	callDeadline  = 90 * time.Second // past it a caller counts as unanswered
)

// call is what one caller asked and what it was told.
type call struct {
	phase int
	via   string // run, moat-run, check
	token string // the marker's name (and the request id where the caller sets it)
	class string // how it ended: exit 0, deny policy-unavailable, error 503, …
	clear bool   // an answer, or an error a caller can act on
	allow bool   // the answer said allow (a run: its decision)
	exit0 bool   // a run answered with exit status 0
	msg   string // the error's message, for the log

	began, ended time.Time
}

// load drives callers until stopped and keeps every call and every event
// JetStream acked.
type load struct {
	s        *stack
	markers  string   // the directory markers go in
	sessions []string // one per phase
	phase    atomic.Int32

	mu      sync.Mutex
	calls   []call
	acked   map[string]int // event id → phase, acked by JetStream
	unacked []int          // per phase: publishes with no ack

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startLoad(s *stack, phases int) *load {
	t := s.t
	l := &load{s: s, markers: filepath.Join(s.ws, "m"), acked: map[string]int{}, unacked: make([]int, phases)}
	if err := os.MkdirAll(l.markers, 0o755); err != nil {
		t.Fatal(err)
	}
	for range phases {
		l.sessions = append(l.sessions, wire.NewID())
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	loop := func(f func()) {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				f()
			}
		}()
	}
	for range clientRunners {
		c := s.dial(home.RoleClient)
		t.Cleanup(c.Close)
		loop(func() { l.add(time.Now(), l.run(c)) })
	}
	for range cliRunners {
		loop(func() { l.add(time.Now(), l.moatRun()) })
	}
	for range checkers {
		c := s.dial(home.RoleClient)
		t.Cleanup(c.Close)
		loop(func() { l.add(time.Now(), l.check(c)) })
	}
	c := s.dial(home.RoleBenchd)
	t.Cleanup(c.Close)
	pub, err := audit.NewPublisher(c.Conn(), home.RoleBenchd, "chaos")
	if err != nil {
		t.Fatal(err)
	}
	loop(func() {
		p := int(l.phase.Load())
		ev := &wire.AuditEvent{Kind: "bench.chaos", SessionID: l.sessions[p]}
		err := pub.Publish(context.Background(), ev)
		l.mu.Lock()
		if err == nil {
			l.acked[ev.ID] = p
		} else {
			l.unacked[p]++
		}
		l.mu.Unlock()
		time.Sleep(2 * time.Millisecond)
	})
	return l
}

// stop ends the load and waits for every caller.
func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

func (l *load) add(began time.Time, c call) {
	c.began, c.ended = began, time.Now()
	l.mu.Lock()
	l.calls = append(l.calls, c)
	l.mu.Unlock()
	if !c.allow {
		time.Sleep(50 * time.Millisecond) // a caller told no waits a little, as a real one would
	}
}

// runs counts the runs of phase p that got an answer or an error.
func (l *load) runs(p int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.calls {
		if c.phase == p && c.via != "check" {
			n++
		}
	}
	return n
}

// argv is the command of a run: it leaves the marker named token.
func (l *load) argv(token string) []string {
	return []string{"touch", filepath.Join(l.markers, token)}
}

// run is one run through the Go client, the request id its token.
func (l *load) run(c *client.Client) call {
	p := int(l.phase.Load())
	out := call{phase: p, via: "run", token: wire.NewID()}
	ctx, cancel := context.WithTimeout(context.Background(), callDeadline)
	defer cancel()
	res, err := c.Run(ctx, &wire.RunRequest{RequestID: out.token, SessionID: l.sessions[p], Profile: "workspace-write",
		Workspace: l.s.ws, Cwd: l.s.ws, Argv: l.argv(out.token)}, nil)
	if ctx.Err() != nil {
		out.class = "no answer"
		return out
	}
	out.result(res, err)
	return out
}

// result classifies a run's answer.
func (out *call) result(res *wire.RunResult, err error) {
	var we *wire.Error
	switch {
	case err == nil && res.Decision != nil && res.Decision.Verdict == wire.VerdictAllow:
		out.allow, out.exit0, out.clear = true, res.ExitCode == 0 && !res.Cancelled, true
		out.class = "exit " + strconv.Itoa(res.ExitCode)
		if res.Cancelled {
			out.class += " cancelled"
		}
	case err == nil && res.Decision != nil:
		out.denied(*res.Decision)
	case err == nil:
		out.class = "result without a decision"
	case errors.As(err, &we):
		out.class, out.clear, out.msg = fmt.Sprintf("error %d", we.Code), we.Message != "", we.Message
	default:
		out.class, out.msg = "error without a code", err.Error()
	}
}

// denied classifies a deny: clear when its first reason is one of the
// fail-closed rules a caller can act on by retrying.
func (out *call) denied(d wire.Decision) {
	rule := "?"
	if len(d.Reasons) > 0 {
		rule, out.msg = d.Reasons[0].Rule, d.Reasons[0].Message
	}
	out.class = d.Verdict + " " + rule
	switch rule {
	case wire.ReasonPolicyUnavailable, wire.ReasonPolicyTimeout, wire.ReasonAuditUnavailable:
		out.clear = out.msg != ""
	}
}

// codeIn finds the code moat prints after an error: "moat: … (503)".
var (
	codeIn = regexp.MustCompile(`\((\d{3})\)\s*$`)
	noBus  = regexp.MustCompile(`^moat: cannot reach the bus at .*is busd running\?`)
)

// moatRun is one `moat run --json`; the CLI sets the request id, so the
// token is found in the recorded argv.
func (l *load) moatRun() call {
	p := int(l.phase.Load())
	out := call{phase: p, via: "moat-run", token: wire.NewID()}
	ctx, cancel := context.WithTimeout(context.Background(), callDeadline)
	defer cancel()
	args := append([]string{"run", "--json", "--session", l.sessions[p], "--profile", "workspace-write",
		"--workspace", l.s.ws, "--"}, l.argv(out.token)...)
	cmd := l.s.cmd("moat", args...)
	cmd.Dir = l.s.ws
	var stdout, stderr limited
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		out.class, out.msg = "not started", err.Error()
		return out
	}
	stop := context.AfterFunc(ctx, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	stop()
	if ctx.Err() != nil {
		out.class = "no answer"
		return out
	}
	var res wire.RunResult
	if json.Unmarshal(stdout.b, &res) == nil && res.Decision != nil {
		out.result(&res, nil)
		return out
	}
	if m := codeIn.FindSubmatch(stderr.b); m != nil {
		out.class, out.clear, out.msg = "error "+string(m[1]), true, string(stderr.b)
		return out
	}
	if noBus.Match(stderr.b) { // busd is down: the CLI says so and how to fix it
		out.class, out.clear, out.msg = "error no bus", true, string(stderr.b)
		return out
	}
	out.class, out.msg = "unclear", fmt.Sprintf("%v: %s", err, stderr.b)
	return out
}

// check asks policyd about a command the profile allows.
func (l *load) check(c *client.Client) call {
	p := int(l.phase.Load())
	out := call{phase: p, via: "check", token: wire.NewID()}
	defer time.Sleep(5 * time.Millisecond) // checks are cheap: leave the machine to the runs
	// No deadline of the caller's: the client's own (10 s) bounds the wait.
	began := time.Now()
	d := c.Check(context.Background(), &wire.CheckRequest{RequestID: out.token, SessionID: l.sessions[p], Argv: []string{"ls", "-l"},
		Workspace: l.s.ws, Cwd: l.s.ws, Profile: wire.RefName("workspace-write"), Approval: wire.ApprovalNever})
	if time.Since(began) > callDeadline {
		out.class = "no answer"
		return out
	}
	if d.Verdict == wire.VerdictAllow {
		out.class, out.allow, out.clear = "allow", true, true
		return out
	}
	out.denied(d)
	return out
}

// limited keeps the first 64 KiB written to it.
type limited struct{ b []byte }

func (w *limited) Write(p []byte) (int, error) {
	if room := 64<<10 - len(w.b); room > 0 {
		w.b = append(w.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}
