//go:build linux

package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/moatsec/moat/test/testbin"
)

// TestRunAnsweredAcrossBusRestart: busd is SIGKILLed and started again while
// runs are in flight. busd's permission for sandboxd to answer a caller's
// reply subject dies with busd; the caller, once reconnected, says where it
// listens again (wire.SubjectRunResume), so
//   - a run still going when the bus is back is answered in full: its exit
//     and its output;
//   - a run that ended while the bus was away is answered with its exit
//     status (from its audit record), not left to the caller's deadline.
func TestRunAnsweredAcrossBusRestart(t *testing.T) {
	s := newStack(t)
	c := s.upOne()
	type answer struct {
		res *wire.RunResult
		err error
	}
	run := func(id, script string) <-chan answer {
		out := make(chan answer, 1)
		go func() {
			res, err := c.Run(context.Background(), &wire.RunRequest{RequestID: id, Profile: "workspace-write", Workspace: s.ws, Cwd: s.ws,
				Argv: []string{"sh", "-c", "touch " + filepath.Join(s.ws, "started-"+id) + "; " + script}}, nil)
			out <- answer{res, err}
		}()
		return out
	}
	started := func(id string) {
		testbin.Eventually(t, 30*time.Second, "run "+id+" started", func() error {
			_, err := os.Stat(filepath.Join(s.ws, "started-"+id))
			return err
		})
	}
	wait := func(a <-chan answer) answer {
		select {
		case got := <-a:
			return got
		case <-time.After(90 * time.Second):
			t.Fatal("no answer in 90 s")
		}
		return answer{}
	}

	// Still going when the bus is back: answered in full.
	long := wire.NewID()
	a := run(long, "sleep 12; echo out-"+long)
	started(long)
	s.proc("busd").Signal(syscall.SIGKILL, stopWithin)
	s.start("busd")
	got := wait(a)
	if got.err != nil || got.res.ExitCode != 0 || string(got.res.Stdout) != "out-"+long+"\n" {
		t.Errorf("a run going on across busd's restart: %+v, %v; want exit 0 and its output", got.res, got.err)
	}

	// Ended while the bus was away: its exit status, clearly.
	s.ready(60 * time.Second)
	short := wire.NewID()
	a = run(short, "sleep 1; exit 3")
	started(short)
	s.proc("busd").Signal(syscall.SIGKILL, stopWithin)
	time.Sleep(3 * time.Second) // the run ends meanwhile
	s.start("busd")
	got = wait(a)
	t.Logf("a run that ended while busd was away: %+v, %v", got.res, got.err)
	switch {
	case got.err == nil && got.res.ExitCode == 3:
	case got.err != nil && strings.Contains(got.err.Error(), "ended with exit status 3"):
	default:
		t.Errorf("a run that ended while busd was away: %+v, %v; want exit 3, or an error naming exit status 3", got.res, got.err)
	}
}

// TestCheckAnsweredAcrossBusRestart: busd is SIGKILLed and started again
// while checks wait for a person. policyd's permission to answer the
// caller's reply subject dies with busd, as sandboxd's does for runs; the
// caller, once reconnected, says where it listens again
// (wire.SubjectCheckResume), so
//   - a check still waiting when the bus is back is answered when the
//     person answers: allow, approval.granted;
//   - a check policyd answered while the bus was away (its approval timed
//     out) is answered with that very decision, policyd's one record of it,
//     not denied policy-timeout at the caller's deadline.
func TestCheckAnsweredAcrossBusRestart(t *testing.T) {
	s := newStack(t)
	c := s.upOne()
	approver := s.dial(home.RoleApprover)
	t.Cleanup(approver.Close)
	check := func(reqID string, timeout time.Duration) (string, <-chan wire.Decision) {
		out, asked := make(chan wire.Decision, 1), make(chan string, 1)
		go func() {
			out <- c.CheckWaiting(context.Background(), &wire.CheckRequest{RequestID: reqID, Argv: []string{"python3", "-c", "print(1)"},
				Workspace: s.ws, Cwd: s.ws, Profile: wire.RefName("workspace-write"), Approval: wire.ApprovalOnRequest,
				ApprovalTimeoutMS: timeout.Milliseconds()}, func(w wire.ApprovalWait) {
				select {
				case asked <- w.ID:
				default:
				}
			})
		}()
		select {
		case id := <-asked:
			return id, out
		case d := <-out:
			t.Fatalf("a prompting check answered without asking: %+v", d)
		case <-time.After(30 * time.Second):
			t.Fatal("nobody asked in 30 s")
		}
		return "", nil
	}
	wait := func(a <-chan wire.Decision) wire.Decision {
		select {
		case d := <-a:
			return d
		case <-time.After(120 * time.Second):
			t.Fatal("no decision in 120 s")
		}
		return wire.Decision{}
	}
	rule := func(d wire.Decision) string {
		if len(d.Reasons) == 0 {
			return ""
		}
		return d.Reasons[0].Rule
	}

	// Still waiting when the bus is back: the person's answer reaches it.
	id, a := check(wire.NewID(), 0)
	s.proc("busd").Signal(syscall.SIGKILL, stopWithin)
	s.start("busd")
	s.ready(60 * time.Second)
	testbin.Eventually(t, 30*time.Second, "the approval answered", func() error {
		_, err := approver.Answer(context.Background(), &wire.ApprovalAnswer{ID: id, Verdict: wire.VerdictAllow, By: "chaos"})
		return err
	})
	if d := wait(a); d.Verdict != wire.VerdictAllow || rule(d) != "approval.granted" {
		t.Errorf("a check waiting across busd's restart, then approved: %s %+v; want allow, approval.granted", d.Verdict, d.Reasons)
	}

	// Answered while the bus was away: that answer, not a timeout.
	reqID := wire.NewID()
	_, a = check(reqID, 2*time.Second)
	s.proc("busd").Signal(syscall.SIGKILL, stopWithin)
	time.Sleep(2500 * time.Millisecond) // the approval times out meanwhile
	s.start("busd")
	if d := wait(a); d.Verdict != wire.VerdictDeny || rule(d) != wire.ReasonApprovalTimeout {
		t.Errorf("a check answered while busd was away: %s %+v; want deny, %s", d.Verdict, d.Reasons, wire.ReasonApprovalTimeout)
	}
	// One decision, one record: the answer was sent again, not made again.
	var n int
	testbin.Eventually(t, 30*time.Second, "the decision on record", func() error {
		page, err := c.AuditQuery(context.Background(), &wire.AuditQuery{RequestID: reqID, Limit: 100})
		if err != nil {
			return err
		}
		n = 0
		for _, e := range page.Events {
			if e.Event.Kind == wire.KindPolicyDecision {
				n++
			}
		}
		if n == 0 {
			return fmt.Errorf("no %s for %s yet", wire.KindPolicyDecision, reqID)
		}
		return nil
	})
	if n != 1 {
		t.Errorf("%d %s records for one check; want 1", n, wire.KindPolicyDecision)
	}
}
