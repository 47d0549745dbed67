package sandboxd

import (
	"context"
	"fmt"
	"testing"

	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// away makes the stream name stop capturing its subjects but keep (a
// publish to them finds no stream, as while busd is away) until the
// returned func puts them back.
func away(t *testing.T, js jetstream.JetStream, name string, keep ...string) func() {
	t.Helper()
	ctx := context.Background()
	st, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	gone := cfg
	gone.Subjects = append([]string{"moat.away." + name}, keep...)
	if _, err := js.UpdateStream(ctx, gone); err != nil {
		t.Fatal(err)
	}
	back := false
	restore := func() {
		if back {
			return
		}
		back = true
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(restore)
	return restore
}

// A run's end whose publish failed (the audit stream away for longer than
// the publisher waits: busd stopped, then killed) is sent again by its
// holder, which lives on, until it is on record — the same event, once —
// and its claim is then marked. TestChaos saw allowed runs left without an
// end after busd SIGTERM then SIGKILL, their sandboxd copies alive: the
// end was fixed in the claim (ending) and nothing ever published it, since
// the sweep only closes the claims of copies found lost. The same holds for
// the run.failed of a claimed run that did not start (its decision not
// confirmed on record, its slot wait over): its claim is released once
// that is on record.
func TestUnrecordedEndSentAgain(t *testing.T) {
	for _, tc := range []struct {
		name       string
		nothingRan bool
		kind       string
		state      string
	}{
		{"run.exit", false, wire.KindRunExit, claimDone},
		{"not run", true, wire.KindRunFailed, claimReleased},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := bustest.Start(t)
			d, err := Start(s.Conn(t, home.RoleSandboxd), fastLiveness)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Stop() })
			js, err := jetstream.New(s.Conn(t, home.RoleAdmin))
			if err != nil {
				t.Fatal(err)
			}
			rr := &wire.RunRequest{RequestID: "req-gap", SessionID: "s-1", Argv: []string{"true"}}
			cl, err := d.claim(context.Background(), rr, "offline")
			if err != nil {
				t.Fatal(err)
			}
			back := away(t, js, wire.AuditStream)
			if tc.nothingRan {
				d.notRun(cl, rr, &wire.Profile{Name: "offline"}, wire.VerdictAllow, "the caller's deadline passed")
			} else {
				code := 0
				d.end(cl, &wire.AuditEvent{Kind: wire.KindRunExit, SessionID: rr.SessionID, RequestID: rr.RequestID, Profile: "offline",
					Argv: rr.Argv, Verdict: wire.VerdictAllow, ExitCode: &code}, "exit 0")
			}
			d.marking.Wait()
			if got := records(t, js, tc.kind); len(got) != 0 {
				t.Fatalf("%s on record with the audit stream away: %+v", tc.kind, got)
			}
			back()
			waitUntil(t, "the end on record and the claim "+tc.state, func() error {
				var c claimRecord
				get(t, js, claimSubject("req-gap"), &c)
				if got := records(t, js, tc.kind); len(got) != 1 || c.State != tc.state {
					return fmt.Errorf("%d %s records, claim %s (%q)", len(got), tc.kind, c.State, c.Outcome)
				}
				// The mark is acked, and so readable, a moment before its
				// writer lets the claim go.
				if n := d.held.Load(); n != 0 {
					return fmt.Errorf("%d claims held once the end is on record, want 0", n)
				}
				return nil
			})
			got := records(t, js, tc.kind)
			if ev := got[0]; ev.RequestID != "req-gap" || ev.Instance != d.ID() || ev.Seq == 0 {
				t.Errorf("on record: %+v", ev)
			}
		})
	}
}

// A claim whose mark fails once its end is on record (MOAT_RUNS not
// answering for longer than ClaimWait) is marked later, while its holder
// lives: it is not left ending, nor held (which would keep this copy's
// liveness record live at its stop, for another to sweep).
func TestClaimMarkTriedAgain(t *testing.T) {
	s := bustest.Start(t)
	d, err := Start(s.Conn(t, home.RoleSandboxd), fastLiveness)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop() })
	js, err := jetstream.New(s.Conn(t, home.RoleAdmin))
	if err != nil {
		t.Fatal(err)
	}
	rr := &wire.RunRequest{RequestID: "req-mark", Argv: []string{"true"}}
	cl, err := d.claim(context.Background(), rr, "offline")
	if err != nil {
		t.Fatal(err)
	}
	back := away(t, js, wire.RunsStream, wire.SubjectRunLive+".*") // claims away, beats stored
	code := 0
	d.end(cl, &wire.AuditEvent{Kind: wire.KindRunExit, RequestID: rr.RequestID, Argv: rr.Argv, Verdict: wire.VerdictAllow, ExitCode: &code}, "exit 0")
	d.marking.Wait() // the mark gave up
	if got := records(t, js, wire.KindRunExit); len(got) != 1 {
		t.Fatalf("%d run.exit records, want the end on record though its claim is away", len(got))
	}
	back()
	waitUntil(t, "the claim marked done", func() error {
		var c claimRecord
		if get(t, js, claimSubject("req-mark"), &c); c.State != claimDone || c.Outcome != "exit 0" {
			return fmt.Errorf("claim %+v", c)
		}
		if n := d.held.Load(); n != 0 {
			return fmt.Errorf("%d claims held", n)
		}
		return nil
	})
	if got := records(t, js, wire.KindRunExit); len(got) != 1 {
		t.Errorf("%d run.exit records, want 1", len(got))
	}
}
