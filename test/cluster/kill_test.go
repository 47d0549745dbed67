//go:build linux

package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/moatsec/moat/test/testbin"
)

// Three servers, the daemons spread across them, runs and audit events
// flowing; one server is SIGKILLed (a follower, or the one leading the
// audit stream) and brought back. Nothing acked is lost or stored twice,
// no run happens twice or without its records, each failed request has a
// clear error, and the streams are whole again with nobody acting.
func TestServerKilledUnderLoad(t *testing.T) {
	for _, leader := range []bool{false, true} {
		name := "a follower"
		if leader {
			name = "the audit stream's leader"
		}
		t.Run(name, func(t *testing.T) { killUnderLoad(t, leader) })
	}
}

func killUnderLoad(t *testing.T, leader bool) {
	w := newWorld(t)
	base, err := os.MkdirTemp("/var/tmp", "moat-cluster-ws-") // a workspace outside /tmp, as real ones are
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	w.ws = base
	s := w.cluster(3)
	s.healthy(90*time.Second, 3)
	for _, d := range []struct {
		bin string
		on  int
	}{{"profiled", 0}, {"profiled", 1}, {"policyd", 1}, {"policyd", 2}, {"sandboxd", 2}, {"sandboxd", 0}, {"auditd", 0}} {
		w.daemon(fmt.Sprintf("%s-%d", d.bin, d.on), d.bin, s.urls(d.on))
	}
	c := w.dial(home.RoleClient, s.urls(1))
	waitServices(t, c, map[string]int{"profiled": 2, "policyd": 2, "sandboxd": 2, "auditd": 1})

	l := startLoad(t, w, s, 3)
	defer l.stop()
	testbin.Eventually(t, 60*time.Second, "runs answered before the kill", func() error {
		if ran, _, _ := l.counts(); ran < 10 {
			return fmt.Errorf("%d runs answered", ran)
		}
		return nil
	})
	js := adminJS(t, w, s.urls(0))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	st, err := s.stream(ctx, js, wire.AuditStream)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	victim := slices.IndexFunc(s.nodes, func(n *node) bool { return (n.name == st.leader) == leader })
	ranBefore, failedBefore, _ := l.counts()
	s.nodes[victim].p.Kill()
	killed := time.Now()
	t.Logf("killed %s (audit stream leader: %s) after %d runs", s.nodes[victim].name, st.leader, ranBefore)
	testbin.Eventually(t, 90*time.Second, "runs answered after the kill", func() error {
		if ran, _, _ := l.counts(); ran < ranBefore+10 {
			return fmt.Errorf("%d runs answered since", ran-ranBefore)
		}
		return nil
	})
	time.Sleep(2 * time.Second)
	s.start(victim)
	s.healthy(120*time.Second, 3) // healed, nobody acting
	t.Logf("back and whole %s after the kill", time.Since(killed).Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	l.stop()

	ran, failed, acked := l.counts()
	byCode := l.checkErrors(t)
	t.Logf("runs answered %d, failed %d (%d before the kill; by code %v); events acked %d, not acked %d; longest gap without an answer %d ms",
		ran, failed, failedBefore, byCode, acked, l.unacked, l.maxGap.Load())

	drained(t, w, s)
	stored := map[string]int{}
	for _, e := range auditOf(t, c, wire.AuditQuery{SessionID: l.sessions, Kind: "bench.load"}) {
		stored[e.ID]++
	}
	for id := range l.acked {
		if stored[id] != 1 {
			t.Errorf("acked event %s stored %d times, want once", id, stored[id])
		}
	}
	for id, n := range stored {
		if n > 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
	}
	checkRuns(t, c, w, l)
}

// checkRuns: every run that happened (its id in the workspace's marker)
// happened once and has its decision and exit records; every answered run
// happened.
func checkRuns(t *testing.T, c *client.Client, w *world, l *load) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(w.ws, l.marker))
	if err != nil {
		t.Fatal(err)
	}
	happened := lines(string(data))
	decisions, exits := map[string]int{}, map[string]int{}
	for _, e := range auditOf(t, c, wire.AuditQuery{SessionID: l.sessions, Kind: "run.decision"}) {
		decisions[e.RequestID]++
	}
	for _, kind := range []string{"run.exit", "run.failed"} { // either closes a run
		for _, e := range auditOf(t, c, wire.AuditQuery{SessionID: l.sessions, Kind: kind}) {
			exits[e.RequestID]++
		}
	}
	for id, n := range happened {
		switch {
		case n != 1:
			t.Errorf("run %s happened %d times", id, n)
		case decisions[id] == 0:
			t.Errorf("run %s happened without a recorded decision", id)
		case exits[id] != 1:
			t.Errorf("run %s happened with %d closing records (run.exit or run.failed), want 1", id, exits[id])
		}
	}
	denied := 0
	for id, res := range l.ran {
		switch {
		case res.Decision != nil && res.Decision.Verdict != wire.VerdictAllow:
			// A decision that could not be had in time is a deny (fail
			// closed): nothing ran, and the answer says why.
			denied++
			t.Logf("run %s denied under fail-over: %+v", id, res.Decision.Reasons)
			if happened[id] != 0 {
				t.Errorf("run %s was denied but happened %d times", id, happened[id])
			}
		case happened[id] != 1 || res.ExitCode != 0:
			t.Errorf("run %s answered exit %d but happened %d times", id, res.ExitCode, happened[id])
		}
	}
	if denied > len(l.ran)/10 {
		t.Errorf("%d of %d runs denied: fail-over should cost a few, not many", denied, len(l.ran))
	}
	t.Logf("%d runs happened, each once with its records", len(happened))
}

// waitServices waits until each named service answers with want copies.
func waitServices(t testing.TB, c *client.Client, want map[string]int) {
	t.Helper()
	testbin.Eventually(t, 60*time.Second, "services up", func() error {
		st, err := c.Status(context.Background(), 500*time.Millisecond)
		if err != nil {
			return err
		}
		got := map[string]int{}
		for _, s := range st.Services {
			got[s.Name] = s.Instances
		}
		for name, n := range want {
			if got[name] != n {
				return fmt.Errorf("services %v", got)
			}
		}
		return nil
	})
}
