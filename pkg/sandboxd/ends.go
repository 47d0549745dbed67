package sandboxd

import (
	"context"
	"errors"
	"time"

	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Ends. Every allowed run gets exactly one end record — run.exit, or a
// run.failed — while its holder lives, and one from a sweeper if the holder
// is lost (lost.go). An end goes through three steps; each may fail, and is
// then tried again:
//
//  1. fix: the end event is stamped (id, instance, seq) and written into the
//     run's claim (state ending, with the event), so that whoever puts it on
//     record — this sandboxd, or a sweeper once it is lost — publishes that
//     very event;
//  2. publish: the stamped event goes to MOAT_AUDIT; sent twice, it is
//     stored once (JetStream and auditd de-duplicate by event id);
//  3. mark: the claim is marked done, or released when nothing ran.
//
// An end not through all three is owed: nothing else would finish it while
// this sandboxd lives (the sweep reads only the claims of copies found
// lost), so the owed loop (liveness, owned and joined with its other loops)
// takes each owed end on from where it stopped, every Beat, until its
// event is acked — busd back, a batch whose ack was lost sent again — and
// its claim marked. A mark that keeps failing is tried markTries times,
// then left, logged, for the sweep that follows this sandboxd's stop or
// loss: its liveness record stays live while it holds a claim.
//
// The holder publishes its end even when the fix failed (MOAT_RUNS full, or
// not answering while MOAT_AUDIT does): the run's end goes on record, at the
// risk — should the holder then be lost before marking the claim — of a
// sweeper's run.failed beside it. A sweeper publishes only an end it fixed
// (strict), and stamps its run.failed only once its takeover has won, so
// two sweepers racing for a claim leave no stamped event unpublished (a
// hole in an instance's seqs that auditd would report as an audit.gap).

// markTries bounds the tries to mark an owed end's claim once its end is
// on record.
const markTries = 10

// retryWait bounds each step of an owed end in one pass of the owed loop.
const retryWait = 5 * time.Second

// owedEnd is one run's end on its way: its claim, the stamped event, and
// how far it got. A claim released with no event (a run not allowed) has
// no ev, and only its mark to go.
type owedEnd struct {
	cl      *claim
	ev      *wire.AuditEvent
	state   string // claimDone, or claimReleased: nothing ran
	outcome string
	strict  bool // publish only once fixed: a sweeper's
	fixed   bool // the claim holds ev (ending)
	taken   bool // another sandboxd took the claim over: not ours to mark
	acked   bool // ev is on record
	tries   int  // marks that failed
}

// finish puts a claimed run's end on record: ev (run.exit or run.failed,
// stamped here) is fixed in the claim, published, and the claim marked —
// done, or released when release is set (nothing ran). What fails is owed,
// tried again until it is through. A release is marked before finish
// returns, so that a caller told "nothing ran; retry" may retry the same
// id at once; a done mark goes on in the background (Stop joins it), so the
// caller's answer does not wait for a third write: a claim still ending
// says how the run ended to a request id sent again, as a done one does.
func (d *Daemon) finish(cl *claim, ev *wire.AuditEvent, outcome string, release bool) {
	d.audit.Stamp(ev)
	e := &owedEnd{cl: cl, ev: ev, state: claimDone, outcome: outcome}
	if release {
		e.state, e.outcome = claimReleased, "not run: "+outcome
	}
	if err := e.record(context.Background()); err != nil {
		d.log.Error("AUDIT GAP: event not recorded yet; sandboxd sends it again until it is", "kind", ev.Kind,
			"request_id", ev.RequestID, "id", ev.ID, "err", err)
		d.live.owe(e)
		return
	}
	if release {
		if !e.settle(context.Background()) {
			d.live.owe(e)
		}
		return
	}
	d.marking.Add(1)
	go func() {
		defer d.marking.Done()
		if !e.settle(context.Background()) {
			d.live.owe(e)
		}
	}()
}

// record fixes e in its claim (unless it is) and publishes it (unless it
// is acked). An error: e is not on record yet.
func (e *owedEnd) record(ctx context.Context) error {
	d := e.cl.d
	if !e.fixed && !e.taken {
		err := e.cl.fix(ctx, e.ev, e.outcome, e.state == claimReleased)
		switch {
		case err == nil:
			e.fixed = true
		case errors.Is(err, errChanged):
			// Taken over by a sweeper: this copy was judged lost. The
			// sweeper records the run.failed (or this very end, if it
			// found it fixed); a holder records its end too, since it
			// knows it; a sweeper drops its own run.failed.
			e.taken = true
			d.held.Add(-1)
			if e.strict {
				d.log.Warn("claim being closed was taken over by another sandboxd: its run.failed, stamped, is dropped "+
					"(auditd may report this seq as an audit.gap)", "request_id", e.ev.RequestID, "seq", e.ev.Seq)
				e.acked = true
				return nil
			}
		case e.strict:
			return err
		default:
			d.log.Warn("the run's end is not fixed in its claim before it is recorded", "request_id", e.ev.RequestID, "err", err)
		}
	}
	if !e.acked {
		if err := d.audit.PublishStamped(ctx, e.ev); err != nil {
			return err
		}
		e.acked = true
	}
	return nil
}

// settle marks e's claim once e is on record, and reports whether nothing
// is left to try: marked, taken over, or tried markTries times.
func (e *owedEnd) settle(ctx context.Context) bool {
	if e.taken {
		return true
	}
	err := e.cl.mark(ctx, e.state, e.outcome)
	if err == nil || errors.Is(err, errChanged) {
		return true
	}
	e.tries++
	if e.tries < markTries {
		return false
	}
	e.cl.d.log.Warn("claim not marked "+e.state+" (its end is on record, or nothing ran): left for the sweep after this sandboxd stops",
		"request_id", e.cl.rec.RequestID, "tries", e.tries, "err", err)
	return true
}

// owe hands e to the owed loop.
func (l *liveness) owe(e *owedEnd) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.owed = append(l.owed, e)
}

// owing is how many ends are owed (tests).
func (l *liveness) owing() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.owed)
}

// pay takes each owed end on from where it stopped, until ctx ends. An end
// that fails on its own — a sweeper's that cannot be fixed while MOAT_RUNS
// is full, a refusal of the stream — is passed over, and goes last; a pass
// stops only when the bus does not answer (unreachable: the others would
// wait as long), the end that found so going last too, after the ends owed
// meanwhile. A mark that fails is passed over as well.
func (l *liveness) pay(ctx context.Context) {
	l.mu.Lock()
	owed := l.owed
	l.owed = nil
	l.mu.Unlock()
	var still, failed []*owedEnd
	for i, e := range owed {
		if ctx.Err() != nil {
			still = append(still, owed[i:]...)
			break
		}
		sctx, cancel := context.WithTimeout(ctx, retryWait)
		late := !e.acked
		err := e.record(sctx)
		if err == nil && late {
			l.d.log.Info("run's end recorded late", "kind", e.ev.Kind, "request_id", e.ev.RequestID, "id", e.ev.ID)
		}
		if err == nil && !e.settle(sctx) {
			still = append(still, e)
		}
		down := err != nil && l.unreachable(sctx, err)
		cancel()
		if err != nil {
			failed = append(failed, e)
			l.d.log.Debug("owed end not recorded yet", "request_id", e.cl.rec.RequestID, "bus_unreachable", down, "err", err)
		}
		if down {
			still = append(still, owed[i+1:]...)
			break
		}
	}
	l.mu.Lock()
	l.owed = append(append(still, l.owed...), failed...)
	l.mu.Unlock()
}

// unreachable reports whether err, an owed end's step that failed under
// ctx, says the bus or the stream does not answer — the connection down,
// no responders, no answer before ctx's deadline — rather than refusing
// this one end (a stream full, a record changed).
func (l *liveness) unreachable(ctx context.Context, err error) bool {
	if dl, ok := ctx.Deadline(); ctx.Err() != nil || ok && !time.Now().Before(dl) {
		return true
	}
	if !l.d.nc.IsConnected() {
		return true
	}
	for _, down := range []error{context.DeadlineExceeded, nats.ErrTimeout, nats.ErrNoResponders, jetstream.ErrNoStreamResponse,
		nats.ErrDisconnected, nats.ErrConnectionClosed, nats.ErrConnectionReconnecting} {
		if errors.Is(err, down) {
			return true
		}
	}
	return false
}
