package sandboxd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// Liveness: a sandboxd that is SIGKILLed, or whose host dies, cannot record
// how its runs ended. So each sandboxd keeps a liveness record in MOAT_RUNS
// (moat.claim.live.<instance>) and rewrites it every Beat; every sandboxd
// reads the others' records, and one whose record has not been rewritten for
// LostAfter is lost: its claims still running are closed, each with one
// run.failed record, and its record is marked swept.
//
// Invariants:
//   - a claim is only taken while its holder's liveness record is stored
//     (liveness.ensure), so a lost holder is always found;
//   - "not rewritten for LostAfter" compares the stream's own timestamps (the
//     stored time of the lost record and of this sandboxd's latest beat), so
//     the hosts' clocks do not matter;
//   - a sandboxd sweeps only after its own beats have been stored without a
//     failure for LostAfter: after busd or the cluster was away, every live
//     sandboxd has beaten again before anybody judges it lost;
//   - a claim is closed exactly once: the sweeper first takes it over (an
//     update expecting the claim's sequence, so of two sweepers one wins),
//     then stamps its run.failed and fixes it in the claim (ending), then
//     publishes it, then marks the claim done (ends.go). A sweeper lost in
//     between holds the claim itself, and is swept in turn: the next one
//     publishes the same stamped event, never a second run.failed;
//   - beats, sweeps and owed ends (ends.go) each have their own goroutine:
//     a sweep held up by a slow bus does not hold up this copy's beats, so
//     a healthy copy is not judged lost for it;
//   - a sandboxd that only lost its connection for longer than LostAfter
//     while a run went on is judged lost too: the run then has a run.failed
//     and, later, its run.exit. LostAfter is long enough that a loaded host
//     does not get there.
//
// The loops are owned by the Daemon: started by Start, stopped and joined by Stop.

// Default liveness timings (Config.Beat, Config.LostAfter).
const (
	DefaultBeat      = 2 * time.Second
	DefaultLostAfter = 20 * time.Second
)

// The states of a liveness record.
const (
	liveUp      = "live"    // beating
	liveStopped = "stopped" // stopped with no claim left open
	liveSwept   = "swept"   // lost; its open claims were closed by another
)

// liveRecord is a sandboxd's liveness record in MOAT_RUNS (JSON).
type liveRecord struct {
	Instance string    `json:"instance"`
	Host     string    `json:"host,omitempty"`
	PID      int       `json:"pid,omitempty"`
	Started  time.Time `json:"started"` // this instance's clock: bounds the claims to read
	State    string    `json:"state"`
	By       string    `json:"by,omitempty"` // swept by
}

// errLostClaim is the text of the run.failed record of a lost holder's run.
func errLostClaim(instance string) string {
	return fmt.Sprintf("sandboxd %s was lost while the run was in flight; whether the command ran to its end is unknown", instance)
}

// liveness is this sandboxd's liveness record and its sweeps of others'.
type liveness struct {
	d         *Daemon
	subject   string
	rec       liveRecord
	beat      time.Duration
	lostAfter time.Duration

	mu    sync.Mutex
	ok    bool       // the last beat was stored
	since time.Time  // since when beats were stored without a failure
	owed  []*owedEnd // ends not through yet (ends.go)

	// owned by the sweep goroutine
	// gone: instances stopped or swept, and when they were last read;
	// read again after goneRecheck LostAfters, in case one judged lost
	// came back.
	gone map[string]time.Time

	passes  atomic.Int64           // sweeps done (tests)
	onSweep atomic.Pointer[func()] // tests: called as each sweep begins
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func newLiveness(d *Daemon) *liveness {
	host, _ := os.Hostname()
	return &liveness{d: d, subject: wire.SubjectRunLive + "." + d.ID(), beat: d.cfg.Beat, lostAfter: d.cfg.LostAfter,
		rec:  liveRecord{Instance: d.ID(), Host: host, PID: os.Getpid(), Started: time.Now().UTC(), State: liveUp},
		gone: map[string]time.Time{}}
}

// start begins the loops: beat every Beat, sweep, and pay what is owed.
func (l *liveness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	for _, f := range []func(context.Context){l.beatOnce, l.sweepOnce, l.pay} {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			t := time.NewTicker(l.beat)
			defer t.Stop()
			for {
				f(ctx)
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
}

// lastPay bounds Stop's last pass over the owed ends: busd draining still
// serves, one that is gone fails fast.
const lastPay = 2 * time.Second

// stop ends the loops and waits for them, then tries the owed ends once
// more. With no claim left held, the record says stopped, so that nobody
// reads this instance's claims again; else it stays live, and the claims
// are closed by another once it is old.
func (l *liveness) stop() {
	l.cancel()
	l.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), lastPay)
	l.pay(ctx)
	cancel()
	if l.d.held.Load() != 0 {
		l.d.log.Warn("claims left open at stop: another sandboxd closes them once this one's liveness record is old",
			"claims", l.d.held.Load(), "owed", l.owing(), "after", l.lostAfter)
		return
	}
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rec := l.rec
	rec.State = liveStopped
	body, _ := json.Marshal(&rec)
	l.d.js.Publish(ctx, l.subject, body, jetstream.WithExpectStream(wire.RunsStream))
}

// ensure makes sure the liveness record is stored before a claim is taken.
func (l *liveness) ensure(ctx context.Context) error {
	l.mu.Lock()
	ok := l.ok
	l.mu.Unlock()
	if ok {
		return nil
	}
	return l.store(ctx)
}

// store writes the liveness record, and notes whether it was stored.
func (l *liveness) store(ctx context.Context) error {
	body, _ := json.Marshal(&l.rec)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := l.d.js.Publish(ctx, l.subject, body, jetstream.WithExpectStream(wire.RunsStream))
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err != nil:
		l.ok, l.since = false, time.Time{}
		return fmt.Errorf("store the liveness record in %s: %w", wire.RunsStream, err)
	case !l.ok || l.since.IsZero():
		l.ok, l.since = true, time.Now()
	}
	return nil
}

// beatOnce rewrites the liveness record.
func (l *liveness) beatOnce(ctx context.Context) {
	if err := l.store(ctx); err != nil && ctx.Err() == nil {
		l.d.log.Debug("liveness beat not stored", "err", err)
	}
}

// sweepOnce sweeps once beats have been stored for LostAfter.
func (l *liveness) sweepOnce(ctx context.Context) {
	l.mu.Lock()
	steady := l.ok && time.Since(l.since) >= l.lostAfter
	l.mu.Unlock()
	if !steady {
		return
	}
	if f := l.onSweep.Load(); f != nil {
		(*f)()
	}
	if err := l.sweep(ctx); err != nil {
		if ctx.Err() == nil {
			l.d.log.Debug("sweep for lost sandboxd copies", "err", err)
		}
		return
	}
	l.passes.Add(1)
}

// goneRecheck, in LostAfters, is how often a stopped or swept instance's
// record is read again (a minute by default): one judged lost that was only
// cut off writes "live" again when it is back, and must be watched again.
const goneRecheck = 3

// candidate is another sandboxd's liveness record and when it was stored.
type candidate struct {
	rec liveRecord
	seq uint64
	at  time.Time
}

// sweep closes the open claims of every sandboxd found lost.
func (l *liveness) sweep(ctx context.Context) error {
	st, err := l.d.js.Stream(ctx, wire.RunsStream)
	if err != nil {
		return err
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(wire.SubjectRunLive+".*"))
	if err != nil {
		return err
	}
	var now time.Time
	var cands []candidate
	gone := map[string]time.Time{}
	for subj := range info.State.Subjects {
		id := strings.TrimPrefix(subj, wire.SubjectRunLive+".")
		if at, ok := l.gone[id]; ok && time.Since(at) < goneRecheck*l.lostAfter {
			gone[id] = at
			continue
		}
		m, err := st.GetLastMsgForSubject(ctx, subj)
		if err != nil {
			continue // aged out since
		}
		if subj == l.subject {
			now = m.Time
			continue
		}
		var rec liveRecord
		if json.Unmarshal(m.Data, &rec) != nil || rec.Instance != id {
			continue
		}
		if rec.State == liveStopped || rec.State == liveSwept {
			gone[id] = time.Now()
			continue
		}
		cands = append(cands, candidate{rec: rec, seq: m.Sequence, at: m.Time})
	}
	l.gone = gone // records aged out of the stream are forgotten
	if now.IsZero() {
		return errors.New("this sandboxd's own liveness record is missing")
	}
	for _, c := range cands {
		if now.Sub(c.at) <= l.lostAfter {
			continue
		}
		l.d.log.Warn("sandboxd copy lost: closing its runs in flight", "instance", c.rec.Instance, "host", c.rec.Host,
			"pid", c.rec.PID, "last_seen", c.at, "silent", now.Sub(c.at).Round(time.Second))
		if err := l.sweepInstance(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// sweepInstance closes the open claims held by the lost instance of c, then
// marks its record swept: reading its claims once is enough.
func (l *liveness) sweepInstance(ctx context.Context, c candidate) error {
	from := c.rec.Started.Add(-10 * time.Minute) // its claims are all later; its clock may be off a little
	cons, err := l.d.js.CreateConsumer(ctx, wire.RunsStream, jetstream.ConsumerConfig{
		FilterSubject: wire.SubjectRunClaim + ".*", DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &from,
		AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: time.Minute, MemoryStorage: true,
	})
	if err != nil {
		return fmt.Errorf("read the claims of %s: %w", c.rec.Instance, err)
	}
	defer l.d.js.DeleteConsumer(context.WithoutCancel(ctx), wire.RunsStream, cons.CachedInfo().Name)
	left := cons.CachedInfo().NumPending
	complete := true
	for left > 0 {
		batch, err := cons.Fetch(int(min(left, 256)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return fmt.Errorf("read the claims of %s: %w", c.rec.Instance, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var rec claimRecord
			if json.Unmarshal(m.Data(), &rec) != nil || rec.Instance != c.rec.Instance ||
				(rec.State != claimRunning && rec.State != claimClosing && rec.State != claimEnding) {
				continue
			}
			md, err := m.Metadata()
			if err != nil {
				complete = false
				continue
			}
			if !l.close(ctx, m.Subject(), md.Sequence.Stream, rec) {
				complete = false
			}
		}
		if n == 0 {
			return fmt.Errorf("read the claims of %s: %d not delivered (%v)", c.rec.Instance, left, batch.Error())
		}
		left -= uint64(n)
	}
	if !complete {
		return nil // the next sweep tries again
	}
	rec := c.rec
	rec.State, rec.By = liveSwept, l.d.ID()
	if _, err := l.d.update(ctx, wire.SubjectRunLive+"."+c.rec.Instance, c.seq, &rec); err != nil {
		l.d.log.Debug("liveness record of a lost sandboxd not marked swept", "instance", c.rec.Instance, "err", err)
	}
	l.gone[c.rec.Instance] = time.Now()
	return nil
}

// close takes over one claim of a lost holder at seq and closes it; false
// when it is not taken over yet (the next sweep tries again). Once taken
// over, the claim is this sandboxd's: its end is fixed, published and
// marked here, or owed (ends.go).
func (l *liveness) close(ctx context.Context, subject string, seq uint64, rec claimRecord) bool {
	lost := rec.Lost
	if lost == "" {
		lost = rec.Instance
	} // else a sweeper was lost while closing it: the run's holder was the one before
	rec.Instance, rec.Lost = l.d.ID(), lost
	if rec.State != claimEnding { // an end already fixed is published as it is
		rec.State = claimClosing
	}
	nseq, err := l.d.update(ctx, subject, seq, &rec)
	if errors.Is(err, errChanged) {
		return true // another sweeper took it, or its holder finished after all
	}
	if err != nil {
		l.d.log.Debug("claim of a lost sandboxd not taken over", "request_id", rec.RequestID, "err", err)
		return false
	}
	l.d.held.Add(1) // until marked (or taken over in turn)
	c := &claim{d: l.d, subject: subject, seq: nseq, rec: rec}
	e := &owedEnd{cl: c, state: claimDone, outcome: rec.Outcome, strict: true}
	if rec.Release {
		e.state = claimReleased
	}
	var end wire.AuditEvent
	if rec.State == claimEnding && wire.Decode(wire.Msgpack, rec.End, &end) == nil {
		e.ev, e.fixed = &end, true
	} else {
		e.ev = &wire.AuditEvent{Kind: wire.KindRunFailed, SessionID: rec.SessionID,
			RequestID: rec.RequestID, Profile: rec.Profile, Argv: rec.Argv, Cwd: rec.Cwd, Verdict: wire.VerdictAllow,
			Detail: map[string]any{"error": errLostClaim(lost), "lost_instance": lost, "claimed_at": rec.At}}
		e.outcome = "run.failed: " + errLostClaim(lost)
		// Stamped only now that the takeover won: a sweeper that lost the
		// race stamped nothing, and leaves no hole in its seqs.
		l.d.audit.Stamp(e.ev)
	}
	// A first try, bounded: the owed loop takes on what is left, so a bus
	// that does not answer holds up the sweep of the next claims no longer.
	ctx, cancel := context.WithTimeout(ctx, retryWait)
	defer cancel()
	if err := e.record(ctx); err != nil {
		l.d.log.Error("run of a lost sandboxd not closed yet: its end is not on record; trying again", "request_id", rec.RequestID, "err", err)
		l.owe(e)
		return true
	}
	if !e.settle(ctx) {
		l.owe(e)
	}
	return true
}
