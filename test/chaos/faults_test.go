//go:build linux

package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/moatsec/moat/test/testbin"
	"github.com/nats-io/nats.go/jetstream"
)

// String names a fault: "policyd-1 SIGTERM", or "no fault" for the
// baseline (fault is TestChaos's: a signal to one process).
func (f fault) String() string {
	if f.name == "" {
		return "no fault"
	}
	return fmt.Sprintf("%s %s", f.name, sigName[f.sig])
}

var sigName = map[syscall.Signal]string{syscall.SIGKILL: "SIGKILL", syscall.SIGTERM: "SIGTERM"}

// faults are the phases, in order. A daemon with two copies loses one while
// the other serves; auditd and busd have one.
var faults = []fault{ // phases: a process named as the stack names it (policyd-1), and its signal
	{},
	{"profiled-0", syscall.SIGKILL}, {"profiled-1", syscall.SIGTERM},
	{"policyd-0", syscall.SIGKILL}, {"policyd-1", syscall.SIGTERM},
	{"sandboxd-0", syscall.SIGKILL}, {"sandboxd-1", syscall.SIGTERM},
	{"auditd-0", syscall.SIGKILL}, {"auditd-0", syscall.SIGTERM},
	{"busd", syscall.SIGKILL}, {"busd", syscall.SIGTERM},
}

// phaseRuns is how many runs each phase answers: a third before the
// fault, the rest while the stack recovers and after.
const phaseRuns = 300

// StopWithin bounds a graceful stop: past it a SIGTERMed process has not
// drained, which is a failure of its own.
const stopWithin = 30 * time.Second

// TestFaultsUnderLoad: every phase's fault under load, then everything
// counted (see the package doc).
func TestFaultsUnderLoad(t *testing.T) {
	s := newStack(t)
	s.up(standard)
	l := startLoad(s, len(faults))
	defer l.stop()
	signalled := make([]time.Time, len(faults)) // when each phase's fault struck
	began := time.Now()
	for p, f := range faults {
		start := time.Now()
		l.phase.Store(int32(p))
		s.waitRuns(l, p, phaseRuns/3, f)
		if f.name != "" {
			signalled[p] = s.inject(f)
		}
		s.waitRuns(l, p, phaseRuns, f)
		t.Logf("phase %2d %-20s %5.1f s", p, f, time.Since(start).Seconds())
	}
	l.stop()
	t.Logf("load over after %.1f s", time.Since(began).Seconds())

	s.drained(90 * time.Second)
	// A run whose sandboxd was SIGKILLed is closed by another copy once the
	// lost one's liveness record is LostAfter old: wait for that sweep.
	live := s.verifyLive()
	for deadline := time.Now().Add(2 * time.Minute); live.OpenRuns > 0 && time.Now().Before(deadline); live = s.verifyLive() {
		time.Sleep(time.Second)
	}
	s.drained(90 * time.Second)
	if err := s.proc("auditd-0").Signal(syscall.SIGTERM, stopWithin); err != nil {
		t.Fatal(err)
	}
	offline := s.verifyOffline()
	account(t, l, s.export(), signalled, map[string]*wire.AuditVerifyReport{
		"moat audit verify": live, "auditd verify --dir --anchor bus": offline})
}

// waitRuns waits until phase p has n runs answered; a stack that does not
// get there within two minutes has not recovered.
func (s *stack) waitRuns(l *load, p, n int, f fault) {
	s.t.Helper()
	testbin.Eventually(s.t, 2*time.Minute, fmt.Sprintf("phase %d (%s): %d runs answered", p, f, n), func() error {
		if got := l.runs(p); got < n {
			return fmt.Errorf("%d answered", got)
		}
		return nil
	})
}

// inject delivers a fault and starts the process again: at once after a
// SIGKILL (as a supervisor would), once it has exited after a SIGTERM. It
// returns when the signal was sent.
func (s *stack) inject(f fault) time.Time {
	s.t.Helper()
	p := s.proc(f.name)
	began := time.Now()
	switch f.sig {
	case syscall.SIGKILL:
		p.Signal(syscall.SIGKILL, stopWithin)
	case syscall.SIGTERM:
		if err := p.Signal(syscall.SIGTERM, stopWithin); err != nil {
			s.t.Errorf("graceful stop: %v", err)
			p.Signal(syscall.SIGKILL, stopWithin)
		} else if p.Err != nil {
			s.t.Errorf("%s after SIGTERM: %v (want exit 0)\n%s", f.name, p.Err, testbin.Tail(p.Output(), 2000))
		}
	}
	restart := []string{f.name}
	if f.name == "busd" && f.sig == syscall.SIGTERM {
		// busd's lame duck stops every daemon as their own SIGTERM would
		// (docs/architecture.md, "Stopping"); a supervisor starts them again.
		for _, name := range s.daemonNames() {
			d := s.proc(name)
			select {
			case <-d.Done:
				if d.Err != nil {
					s.t.Errorf("%s after busd's SIGTERM: %v (want exit 0)\n%s", name, d.Err, testbin.Tail(d.Output(), 2000))
				}
			case <-time.After(stopWithin):
				s.t.Errorf("%s still running %s after busd's SIGTERM", name, stopWithin)
				d.Signal(syscall.SIGKILL, stopWithin)
			}
			restart = append(restart, name)
		}
	}
	stopped := time.Since(began)
	for _, name := range restart {
		s.start(name)
	}
	s.ready(90 * time.Second)
	s.t.Logf("%s: stopped in %v, every copy answering again %v later", f, stopped.Round(time.Millisecond),
		(time.Since(began) - stopped).Round(time.Millisecond))
	return began
}

// drained waits until auditd has stored everything in MOAT_AUDIT.
func (s *stack) drained(within time.Duration) {
	s.t.Helper()
	c := s.dial(home.RoleAdmin)
	defer c.Close()
	js, err := jetstream.New(c.Conn())
	if err != nil {
		s.t.Fatal(err)
	}
	testbin.Eventually(s.t, within, "auditd drained "+wire.AuditStream, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, wire.AuditStream)
		if err != nil {
			return err
		}
		if n := st.CachedInfo().State.Msgs; n != 0 {
			return fmt.Errorf("%d events not yet stored", n)
		}
		return nil
	})
}

// verifyLive is `moat audit verify --json` against the running auditd.
func (s *stack) verifyLive() *wire.AuditVerifyReport {
	s.t.Helper()
	out, err := s.cmd("moat", "audit", "verify", "--json").Output()
	var rep wire.AuditVerifyReport
	if jerr := json.Unmarshal(out, &rep); jerr != nil {
		s.t.Fatalf("moat audit verify --json: %v, %v\n%s", err, jerr, out)
	}
	return &rep
}

// verifyOffline is `auditd verify` on the store's directory, against the
// anchor busd keeps.
func (s *stack) verifyOffline() *wire.AuditVerifyReport {
	s.t.Helper()
	out, err := s.cmd("auditd", "verify", "--dir", s.home.AuditDir(), "--anchor", "bus").Output()
	var rep wire.AuditVerifyReport
	if jerr := json.Unmarshal(out, &rep); jerr != nil {
		s.t.Fatalf("auditd verify: %v, %v\n%s", err, jerr, out)
	}
	return &rep
}
