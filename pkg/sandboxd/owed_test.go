package sandboxd

import (
	"context"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// One owed end that fails on its own — a sweeper's, which cannot be fixed
// in its claim because MOAT_RUNS is full — does not stop the pass over the
// owed ends: the holder's own end owed behind it is on record, and its
// claim marked, after that one pass; the sweeper's end stays owed for the
// next. Review saw every pass stop at the first failure, so with k
// such ends queued a holder's end waited about k beats.
func TestOwedPassGoesPastFullStream(t *testing.T) {
	s := bustest.Start(t)
	// Beats an hour apart: MOAT_RUNS keeps its size once measured.
	d, err := Start(s.Conn(t, home.RoleSandboxd), Config{Beat: time.Hour, LostAfter: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop() })
	js, err := jetstream.New(s.Conn(t, home.RoleAdmin))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	swept, err := d.claim(ctx, &wire.RunRequest{RequestID: "req-swept", Argv: []string{"true"}}, "offline")
	if err != nil {
		t.Fatal(err)
	}
	own, err := d.claim(ctx, &wire.RunRequest{RequestID: "req-own", Argv: []string{"true"}}, "offline")
	if err != nil {
		t.Fatal(err)
	}

	// MOAT_RUNS full: its bound shrunk to what it holds.
	FillStream(t, js, wire.RunsStream)

	failed := &wire.AuditEvent{Kind: wire.KindRunFailed, RequestID: "req-swept", Argv: []string{"true"}, Verdict: wire.VerdictAllow}
	d.audit.Stamp(failed)
	code := 0
	exit := &wire.AuditEvent{Kind: wire.KindRunExit, RequestID: "req-own", Argv: []string{"true"}, Verdict: wire.VerdictAllow, ExitCode: &code}
	d.audit.Stamp(exit)

	// A liveness of its own, not started: its one pass is this test's.
	l := newLiveness(d)
	l.owe(&owedEnd{cl: swept, ev: failed, state: claimDone, outcome: "run.failed: lost", strict: true})
	l.owe(&owedEnd{cl: own, ev: exit, state: claimDone, outcome: "exit 0"})
	l.pay(ctx)

	if got := records(t, js, wire.KindRunExit); len(got) != 1 || got[0].RequestID != "req-own" {
		t.Errorf("run.exit records after one pass: %+v, want the holder's own end on record", got)
	}
	if got := records(t, js, wire.KindRunFailed); len(got) != 0 {
		t.Errorf("run.failed records: %+v, want none (a sweeper publishes only an end fixed in its claim)", got)
	}
	var c claimRecord
	if get(t, js, claimSubject("req-own"), &c); c.State != claimDone {
		t.Errorf("the holder's claim after the pass: %+v, want done (a done mark shrinks it: it fits)", c)
	}
	if n := l.owing(); n != 1 || l.owed[0].cl != swept {
		t.Errorf("%d ends owed after the pass, want 1: the sweeper's, for the next pass", n)
	}
}
