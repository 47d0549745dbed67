//go:build linux

package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/moatsec/moat/test/testbin"
)

// outcome is what one caller heard.
type outcome struct {
	id  string
	res *wire.RunResult
	err error
}

// fault is one step of the round: a signal to one process.
type fault struct {
	name string
	sig  syscall.Signal
}

var round = []fault{
	{"profiled.1", syscall.SIGKILL}, {"policyd.1", syscall.SIGTERM}, {"sandboxd.1", syscall.SIGKILL},
	{"sandboxd.2", syscall.SIGTERM}, {"auditd", syscall.SIGKILL}, {"policyd.2", syscall.SIGKILL},
	{"profiled.2", syscall.SIGTERM}, {"auditd", syscall.SIGTERM}, {"busd", syscall.SIGTERM}, {"busd", syscall.SIGKILL},
}

func TestChaos(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	moatHome, ws := filepath.Join(dir, "moat"), filepath.Join(dir, "ws")
	os.MkdirAll(ws, 0o755)
	url := fmt.Sprintf("nats://127.0.0.1:%d", testbin.FreePort(t))
	env := append(os.Environ(), "MOAT_HOME="+moatHome, "MOAT_BUS="+url)
	init := exec.Command(filepath.Join(binDir, "moat"), "init")
	init.Env = env
	if out, err := init.CombinedOutput(); err != nil {
		t.Fatalf("moat init: %v\n%s", err, out)
	}
	daemons := map[string]*daemon{"busd": {name: "busd", args: []string{"--listen", url[len("nats://"):]}}}
	for _, n := range []string{"profiled.1", "profiled.2", "policyd.1", "policyd.2", "sandboxd.1", "sandboxd.2", "auditd"} {
		daemons[n] = &daemon{name: n}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, d := range daemons {
		d.env = env
		d.supervise(t, stop, &wg)
	}
	t.Cleanup(func() {
		close(stop)
		wg.Wait()
		if t.Failed() {
			for n, d := range daemons {
				t.Logf("--- %s (%d starts):\n%s", n, d.runs, d.output())
			}
		}
	})
	h, _ := home.New(moatHome)
	dial := func(role string) *client.Client {
		c, err := client.Dial(context.Background(), client.Options{URL: url, Role: role, Wait: 30 * time.Second}.Fill(h))
		if err != nil {
			t.Fatalf("dial as %s: %v", role, err)
		}
		t.Cleanup(c.Close)
		return c
	}
	c := dial(home.RoleClient)
	waitStack(t, c)

	// Load: callers running commands side by side all along the round.
	session := wire.NewID()
	var mu sync.Mutex
	var heard []outcome
	loadStop := make(chan struct{})
	var load sync.WaitGroup
	for i := 0; i < 3; i++ {
		lc := dial(home.RoleClient)
		load.Add(1)
		go func() {
			defer load.Done()
			for {
				select {
				case <-loadStop:
					return
				default:
				}
				id := wire.NewID()
				ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
				res, err := lc.Run(ctx, &wire.RunRequest{RequestID: id, SessionID: session, Profile: "offline", Workspace: ws,
					Argv: []string{"sh", "-c", "echo ok"}}, nil)
				cancel()
				mu.Lock()
				heard = append(heard, outcome{id, res, err})
				mu.Unlock()
				if err != nil {
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	for _, f := range round {
		time.Sleep(3 * time.Second)
		t.Logf("%s: %s", f.sig, f.name)
		daemons[f.name].signal(f.sig)
	}
	time.Sleep(3 * time.Second)
	waitStack(t, c)
	time.Sleep(2 * time.Second) // runs after the last fault
	close(loadStop)
	load.Wait()

	// A run whose sandboxd was SIGKILLed is closed with a run.failed by
	// another copy once the lost one's liveness record is old
	// (pkg/sandboxd/lost.go), and one whose end could not be published
	// (busd away) by its own sandboxd once busd is back (ends.go): every
	// allowed run gets its end. A denied run has none (nothing ran): policyd
	// answers deny when it cannot record an allow, as at a busd SIGKILL.
	// books fails on any left open.
	var records map[string]map[string]int
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
		records = gather(t, c, session)
		open := 0
		for _, r := range records {
			if r[allowed] > 0 && r[wire.KindRunExit]+r[wire.KindRunFailed] == 0 {
				open++
			}
		}
		if open == 0 || time.Now().After(deadline) {
			break
		}
	}
	count(t, heard, records)
}

// allowed counts, among a request's records (gather), its run.decision
// records that allow.
const allowed = wire.KindRunDecision + ":" + wire.VerdictAllow

// checkedPrefix, followed by a verdict, counts among a request's records
// its policy.decision records with that verdict.
const checkedPrefix = wire.KindPolicyDecision + ":"

// waitStack waits until every copy answers again.
func waitStack(t *testing.T, c *client.Client) {
	t.Helper()
	want := map[string]int{"profiled": 2, "policyd": 2, "sandboxd": 2, "auditd": 1}
	var last string
	for i := 0; i < 300; i++ {
		st, err := c.Status(context.Background(), 200*time.Millisecond)
		ok := err == nil
		if ok {
			for _, s := range st.Services {
				if want[s.Name] != 0 && s.Instances != want[s.Name] {
					ok = false
				}
			}
			last = fmt.Sprintf("%+v", st.Services)
		}
		if ok && len(st.Services) >= len(want) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the stack did not come back: %s", last)
}

// gather waits until auditd has stored everything in the stream, then
// returns the session's records: request id → kind → how many (and
// allowed → how many allowing decisions, checkedPrefix+verdict → how many
// checks with that verdict).
func gather(t *testing.T, c *client.Client, session string) map[string]map[string]int {
	t.Helper()
	for i := 0; ; i++ {
		st, err := c.AuditStats(context.Background())
		if err == nil && st.Lag == 0 && st.Consuming {
			break
		}
		if i > 600 {
			t.Fatalf("auditd did not catch up: %+v %v", st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	out := map[string]map[string]int{}
	q := &wire.AuditQuery{SessionID: session, Limit: wire.MaxAuditPage}
	for {
		page, err := c.AuditQuery(context.Background(), q)
		if err != nil {
			t.Fatalf("audit query: %v", err)
		}
		for _, e := range page.Events {
			if out[e.Event.RequestID] == nil {
				out[e.Event.RequestID] = map[string]int{}
			}
			out[e.Event.RequestID][e.Event.Kind]++
			switch {
			case e.Event.Kind == wire.KindRunDecision && e.Event.Verdict == wire.VerdictAllow:
				out[e.Event.RequestID][allowed]++
			case e.Event.Kind == wire.KindPolicyDecision:
				out[e.Event.RequestID][checkedPrefix+e.Event.Verdict]++
			}
		}
		if page.Next == 0 {
			return out
		}
		q.Cursor = page.Next
	}
}

// count checks the books (books) and logs the tally.
func count(t *testing.T, heard []outcome, records map[string]map[string]int) {
	t.Helper()
	problems, tally := books(heard, records)
	for _, p := range problems {
		t.Error(p)
	}
	t.Log(tally)
}

// maxRepeats bounds the records of a run's resolution, or of its check: a
// resolution or check lost with busd is sent again (Moat-Resent,
// pkg/client), and a copy that did not see it resolves or decides it
// again — true records, that must agree — but a run is never sent again.
const maxRepeats = 3

// books checks what callers heard against what is on record (gather): it
// returns each broken promise, and a tally of the answers.
func books(heard []outcome, records map[string]map[string]int) (problems []string, tally string) {
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	answered, refused, lost := 0, 0, 0
	errs := map[int]int{}
	repeated := map[string]int{} // "kind ×n" → runs
	for _, o := range heard {
		r := records[o.id]
		verdicts := map[string]int{}
		for kind, n := range r {
			switch {
			case strings.HasPrefix(kind, checkedPrefix):
				verdicts[strings.TrimPrefix(kind, checkedPrefix)] = n
			case kind == allowed:
			case kind == wire.KindProfileResolved || kind == wire.KindPolicyDecision:
				if n > 1 {
					repeated[fmt.Sprintf("%s ×%d", kind, n)]++
				}
				if n > maxRepeats {
					fail("run %s: %d %s records, want %d at most (sent again across busd restarts)", o.id, n, kind, maxRepeats)
				}
			case n != 1:
				fail("run %s: %d %s records, want one", o.id, n, kind)
			}
		}
		if len(verdicts) > 1 {
			fail("run %s: its %s records disagree: %v", o.id, wire.KindPolicyDecision, verdicts)
		}
		if r[allowed] > 0 && r[wire.KindRunExit]+r[wire.KindRunFailed] == 0 {
			fail("run %s: allowed on record without an end: %v", o.id, r)
		}
		if r[wire.KindRunExit]+r[wire.KindRunFailed] > 1 {
			fail("run %s: both an exit and a run.failed on record: %v", o.id, r)
		}
		var we *wire.Error
		switch {
		case o.err == nil:
			answered++
			if r[wire.KindRunDecision] != 1 {
				fail("run %s was answered (exit %d) but its decision is not on record: %v", o.id, o.res.ExitCode, r)
			}
			if o.res.Decision != nil && o.res.Decision.Verdict == wire.VerdictAllow && r[wire.KindRunExit] != 1 {
				fail("run %s ran (exit %d) but its exit is not on record: %v", o.id, o.res.ExitCode, r)
			}
		case errors.As(o.err, &we) && we.Code != 0 && !errors.Is(o.err, context.DeadlineExceeded):
			refused++
			errs[we.Code]++
			if r[wire.KindRunDecision] == 1 && r[wire.KindRunFailed] == 1 {
				lost++ // its sandboxd was killed outright: another recorded the end
			}
		default:
			fail("run %s: the caller got no answer and no clear error: %v", o.id, o.err)
		}
	}
	if answered == 0 {
		fail("no run was answered: the load did not run")
	}
	return problems, fmt.Sprintf("%d runs: %d answered, %d refused with a clear error %v, %d of them closed by run.failed "+
		"(their sandboxd killed with SIGKILL, or the sandbox refused); runs whose resolution or check was done more than once "+
		"(sent again across a busd restart), by count: %v", len(heard), answered, refused, errs, lost, repeated)
}
