package store

import (
	"testing"

	"github.com/moatsec/moat/pkg/wire"
)

// TestOpenRunsWhateverTheOrder: a run's exit stored before its decision
// closes it all the same. auditd killed mid-batch gets that batch again only
// after its ack wait, behind newer events, so a decision can land after the
// exit it led to (test/chaos saw four such runs called open for ever after
// an auditd SIGKILL).
func TestOpenRunsWhateverTheOrder(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ev := func(kind, req, verdict string) *wire.AuditEvent {
		return &wire.AuditEvent{ID: wire.NewID(), Source: "sandboxd", Kind: kind, RequestID: req, Verdict: verdict}
	}
	s.Append([]*wire.AuditEvent{
		ev(wire.KindRunExit, "r1", "allow"), ev(wire.KindRunDecision, "r1", "allow"), // redelivered late
		ev(wire.KindRunFailed, "r2", "allow"), ev(wire.KindRunDecision, "r2", "allow"),
		ev(wire.KindRunDecision, "r3", "allow"), ev(wire.KindRunExit, "r3", "allow"),
		ev(wire.KindRunDecision, "r4", "allow"), // its exit was lost
	})
	s.Close()
	rep, err := Verify(dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OpenRuns != 1 || len(rep.OpenRunIDs) != 1 || rep.OpenRunIDs[0] != "r4" {
		t.Fatalf("open runs %d %v, want only r4", rep.OpenRuns, rep.OpenRunIDs)
	}
}
