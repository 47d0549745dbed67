package sandboxd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/audit"
	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// fastLiveness judges a copy lost after half a second of silence.
var fastLiveness = Config{Beat: 50 * time.Millisecond, LostAfter: 500 * time.Millisecond}

// A run claimed by a sandboxd that is lost (its liveness record no longer
// rewritten) is closed with exactly one run.failed, even with two copies
// sweeping; a claim held by a live copy, and a claim already done, are left
// alone; the lost copy's record is marked swept.
func TestLostHolderClosedOnce(t *testing.T) {
	s := bustest.Start(t)
	var daemons []*Daemon
	for range 2 {
		d, err := Start(s.Conn(t, home.RoleSandboxd), fastLiveness)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Stop() })
		daemons = append(daemons, d)
	}
	ctx := context.Background()
	js, err := jetstream.New(s.Conn(t, home.RoleAdmin))
	if err != nil {
		t.Fatal(err)
	}
	// A copy that beat once and then died, holding a run in flight and one done.
	put(t, js, wire.SubjectRunLive+".dead-1", liveRecord{Instance: "dead-1", Started: time.Now().UTC(), State: liveUp})
	put(t, js, claimSubject("req-open"), claimRecord{RequestID: "req-open", SessionID: "s-1", Argv: []string{"make", "test"}, Instance: "dead-1", State: claimRunning})
	doneSeq := put(t, js, claimSubject("req-done"), claimRecord{RequestID: "req-done", Instance: "dead-1", State: claimDone, Outcome: "exit 0"})
	// A live copy's run in flight.
	held, err := daemons[0].claim(ctx, &wire.RunRequest{RequestID: "req-live"}, "workspace-write")
	if err != nil {
		t.Fatal(err)
	}

	waitUntil(t, "the lost copy's run closed and its record swept", func() error {
		var c claimRecord
		get(t, js, claimSubject("req-open"), &c)
		var l liveRecord
		get(t, js, wire.SubjectRunLive+".dead-1", &l)
		if c.State != claimDone || l.State != liveSwept {
			return fmt.Errorf("claim %+v, liveness %+v", c, l)
		}
		return nil
	})
	// Both copies sweep a few more times: nothing changes.
	var after [2]int64
	for i, d := range daemons {
		after[i] = d.live.passes.Load()
	}
	waitUntil(t, "more sweeps", func() error {
		for i, d := range daemons {
			if n := d.live.passes.Load(); n < after[i]+3 {
				return fmt.Errorf("copy %d swept %d times since", i, n-after[i])
			}
		}
		return nil
	})

	failed := failedRecords(t, js)
	if len(failed) != 1 || failed[0].RequestID != "req-open" || failed[0].Detail["error"] != errLostClaim("dead-1") || failed[0].SessionID != "s-1" ||
		len(failed[0].Argv) != 2 || failed[0].Argv[1] != "test" {
		t.Fatalf("run.failed records %+v, want exactly one, of req-open, saying dead-1 was lost", failed)
	}
	var c claimRecord
	if seq := get(t, js, claimSubject("req-done"), &c); seq != doneSeq {
		t.Errorf("the done claim was rewritten (%+v)", c)
	}
	if seq := get(t, js, claimSubject("req-live"), &c); seq != held.seq || c.State != claimRunning || c.Instance != daemons[0].ID() {
		t.Errorf("the live copy's claim: %+v at %d, want left running at %d", c, seq, held.seq)
	}
	held.done("exit 0")
	if get(t, js, claimSubject("req-live"), &c); c.State != claimDone || c.Outcome != "exit 0" {
		t.Errorf("after done: %+v", c)
	}
	// The lost copy was only cut off: it comes back, takes a run, and is
	// lost again. It is watched again, and that run closed too.
	put(t, js, wire.SubjectRunLive+".dead-1", liveRecord{Instance: "dead-1", Started: time.Now().UTC(), State: liveUp})
	put(t, js, claimSubject("req-again"), claimRecord{RequestID: "req-again", Instance: "dead-1", State: claimRunning})
	waitUntil(t, "the run of the copy lost again closed", func() error {
		var c claimRecord
		if get(t, js, claimSubject("req-again"), &c); c.State != claimDone {
			return fmt.Errorf("claim %+v", c)
		}
		return nil
	})
	// Of two sweepers racing for a claim, the loser stamped nothing: each
	// copy's seqs run without a hole (auditd would report one as an
	// audit.gap), the next one after those it published.
	failed = failedRecords(t, js)
	for i, d := range daemons {
		published := 0
		for _, ev := range failed {
			if ev.Instance == d.ID() {
				published++
			}
		}
		probe := &wire.AuditEvent{Kind: wire.KindRunFailed}
		d.audit.Stamp(probe)
		if probe.Seq != uint64(published)+1 {
			t.Errorf("copy %d published %d events and its next seq is %d: it stamped events it never published", i, published, probe.Seq)
		}
	}
}

// A copy lost after fixing a run's end in its claim (ending) — whether or
// not it got to publish that end — leaves exactly that end on record: the
// sweeper publishes the same event (same id, seq and instance), never a
// run.failed beside it. Chaos saw a run with both, its sandboxd SIGKILLed
// between publishing the exit and marking the claim done.
func TestLostHolderEndingPublishedOnce(t *testing.T) {
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
	lost, err := audit.NewPublisher(s.Conn(t, home.RoleSandboxd), wire.ServiceSandboxd, "dead-2")
	if err != nil {
		t.Fatal(err)
	}
	put(t, js, wire.SubjectRunLive+".dead-2", liveRecord{Instance: "dead-2", Started: time.Now().UTC(), State: liveUp})
	ends := map[string]*wire.AuditEvent{}
	for _, id := range []string{"req-published", "req-unpublished"} {
		ev := &wire.AuditEvent{Kind: wire.KindRunExit, RequestID: id, Verdict: wire.VerdictAllow, Argv: []string{"true"},
			Detail: map[string]any{"exit_code": 3}}
		lost.Stamp(ev)
		end, err := wire.Encode(wire.Msgpack, ev)
		if err != nil {
			t.Fatal(err)
		}
		put(t, js, claimSubject(id), claimRecord{RequestID: id, Instance: "dead-2", State: claimEnding, Outcome: "exit 3", End: end})
		ends[id] = ev
	}
	if err := lost.PublishStamped(context.Background(), ends["req-published"]); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the lost copy's ending claims done", func() error {
		for id := range ends {
			var c claimRecord
			if get(t, js, claimSubject(id), &c); c.State != claimDone || c.Outcome != "exit 3" || c.End != nil {
				return fmt.Errorf("%s: %+v", id, c)
			}
		}
		return nil
	})
	if f := failedRecords(t, js); len(f) != 0 {
		t.Errorf("run.failed beside a fixed end: %+v", f)
	}
	got := map[string][]wire.AuditEvent{}
	for _, ev := range records(t, js, wire.KindRunExit) {
		got[ev.RequestID] = append(got[ev.RequestID], ev)
	}
	for id, want := range ends {
		if len(got[id]) != 1 {
			t.Errorf("%s: %d run.exit messages, want 1", id, len(got[id]))
			continue
		}
		ev := got[id][0]
		if ev.ID != want.ID || ev.Seq != want.Seq || ev.Instance != "dead-2" || fmt.Sprint(ev.Detail["exit_code"]) != "3" {
			t.Errorf("%s: on record %+v, want the lost copy's own event %+v", id, ev, want)
		}
	}
}

func claimSubject(requestID string) string { return wire.SubjectRunClaim + "." + claimKey(requestID) }

func put(t *testing.T, js jetstream.JetStream, subject string, v any) uint64 {
	t.Helper()
	body, _ := json.Marshal(v)
	ack, err := js.Publish(context.Background(), subject, body)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

func get(t *testing.T, js jetstream.JetStream, subject string, v any) uint64 {
	t.Helper()
	st, err := js.Stream(context.Background(), wire.RunsStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(context.Background(), subject)
	if err != nil {
		t.Fatalf("%s: %v", subject, err)
	}
	if err := json.Unmarshal(m.Data, v); err != nil {
		t.Fatal(err)
	}
	return m.Sequence
}

// failedRecords are the run.failed events in MOAT_AUDIT (nobody consumes
// them in these tests).
func failedRecords(t *testing.T, js jetstream.JetStream) []wire.AuditEvent {
	t.Helper()
	return records(t, js, wire.KindRunFailed)
}

// records are sandboxd's events of kind in MOAT_AUDIT.
func records(t *testing.T, js jetstream.JetStream, kind string) []wire.AuditEvent {
	t.Helper()
	ctx := context.Background()
	st, err := js.Stream(ctx, wire.AuditStream)
	if err != nil {
		t.Fatal(err)
	}
	var out []wire.AuditEvent
	for seq := uint64(1); ; {
		m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(wire.AuditSubject(wire.ServiceSandboxd, kind)))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		var ev wire.AuditEvent
		if err := wire.Decode(wire.Msgpack, m.Data, &ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
		seq = m.Sequence + 1
	}
}

// waitUntil waits for f to succeed, a minute at most (a loaded machine).
func waitUntil(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after a minute: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A claim carries argv and cwd as the audit would: secrets redacted, long
// arguments bounded.
func TestClaimArgvOnRecord(t *testing.T) {
	s := bustest.Start(t)
	d, err := Start(s.Conn(t, home.RoleSandboxd), Config{Sanitizer: audit.NewSanitizer([]byte("k"))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop() })
	secret := "ghp_" + strings.Repeat("a", 36)
	c, err := d.claim(context.Background(), &wire.RunRequest{RequestID: "req-s", Argv: []string{"gh", secret, strings.Repeat("x", 1<<20)}}, "")
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(s.Conn(t, home.RoleAdmin))
	if err != nil {
		t.Fatal(err)
	}
	var got claimRecord
	get(t, js, claimSubject("req-s"), &got)
	if len(got.Argv) != 3 || strings.Contains(got.Argv[1], secret) || !strings.Contains(got.Argv[1], "REDACTED") ||
		len(got.Argv[2]) > audit.MaxFieldBytes+256 {
		t.Fatalf("claim's argv %.200q, want the token redacted and the long word cut", got.Argv)
	}
	c.done("exit 0")
}

// A sweeper fixes the run.failed it is about to publish in the claim it
// took over (ending, stamped) before it publishes it: should its publish be
// ambiguous (its ack lost), or the sweeper be lost before it marks the
// claim done, whoever tries again publishes that same event — same id,
// same seq — never a second run.failed. Here the first sweeper cannot
// publish (the audit stream away) and stops; the second, finding it lost,
// publishes the first one's event.
func TestSweeperFixesItsRunFailedFirst(t *testing.T) {
	s := bustest.Start(t)
	js, err := jetstream.New(s.Conn(t, home.RoleAdmin))
	if err != nil {
		t.Fatal(err)
	}
	put(t, js, wire.SubjectRunLive+".dead-3", liveRecord{Instance: "dead-3", Started: time.Now().UTC(), State: liveUp})
	put(t, js, claimSubject("req-lost"), claimRecord{RequestID: "req-lost", SessionID: "s-3", Argv: []string{"make"}, Instance: "dead-3", State: claimRunning})
	back := away(t, js, wire.AuditStream)
	first, err := Start(s.Conn(t, home.RoleSandboxd), fastLiveness)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Stop() })

	var fixed wire.AuditEvent
	waitUntil(t, "the first sweeper's run.failed fixed in the claim", func() error {
		var c claimRecord
		get(t, js, claimSubject("req-lost"), &c)
		if c.State != claimEnding || c.Instance != first.ID() || c.Lost != "dead-3" {
			return fmt.Errorf("claim %+v", c)
		}
		return wire.Decode(wire.Msgpack, c.End, &fixed)
	})
	if fixed.Kind != wire.KindRunFailed || fixed.RequestID != "req-lost" || fixed.Instance != first.ID() || fixed.Seq == 0 ||
		fixed.Detail["lost_instance"] != "dead-3" {
		t.Fatalf("fixed end %+v, want the first sweeper's stamped run.failed", fixed)
	}
	first.Stop() // holding the claim: its liveness record stays live, and ages
	second, err := Start(s.Conn(t, home.RoleSandboxd), fastLiveness)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Stop() })
	waitUntil(t, "the second sweeper took the claim over", func() error {
		var c claimRecord
		if get(t, js, claimSubject("req-lost"), &c); c.Instance != second.ID() || c.Lost != "dead-3" {
			return fmt.Errorf("claim %+v", c)
		}
		return nil
	})
	back()
	waitUntil(t, "the claim closed", func() error {
		var c claimRecord
		if get(t, js, claimSubject("req-lost"), &c); c.State != claimDone {
			return fmt.Errorf("claim %+v", c)
		}
		return nil
	})
	failed := failedRecords(t, js)
	if len(failed) != 1 || failed[0].ID != fixed.ID || failed[0].Seq != fixed.Seq || failed[0].Instance != first.ID() {
		t.Fatalf("run.failed records %+v, want exactly the first sweeper's %+v", failed, fixed)
	}
}

// A sweep held up (a slow bus: each claim of a lost copy waits for
// MOAT_AUDIT) does not hold up this copy's beats: its liveness record is
// rewritten all the while, so the other copies do not judge a healthy copy
// lost.
func TestBeatsDuringLongSweep(t *testing.T) {
	s := bustest.Start(t)
	d, err := Start(s.Conn(t, home.RoleSandboxd), fastLiveness)
	if err != nil {
		t.Fatal(err)
	}
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hold := func() { once.Do(func() { close(held); <-release }) }
	d.live.onSweep.Store(&hold)
	t.Cleanup(func() { d.Stop() })
	t.Cleanup(func() { close(release) }) // before Stop, which joins the sweep
	js, err := jetstream.New(s.Conn(t, home.RoleAdmin))
	if err != nil {
		t.Fatal(err)
	}
	<-held
	var rec liveRecord
	from := get(t, js, wire.SubjectRunLive+"."+d.ID(), &rec)
	waitUntil(t, "20 beats while a sweep is held up", func() error {
		if seq := get(t, js, wire.SubjectRunLive+"."+d.ID(), &rec); seq < from+20 || rec.State != liveUp {
			return fmt.Errorf("liveness record at %d (%s), from %d", seq, rec.State, from)
		}
		return nil
	})
}
