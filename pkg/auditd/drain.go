package auditd

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// Group commit. The store compresses each Append as one block, and a block
// of one event takes ~7 times the disk of one among hundreds (350 against
// 49 bytes an event): the messages the stream delivers wait up to Linger
// after the first of them arrived for others to share their block, as a
// run's events and those of the runs after it do, across fetches. A block
// goes sooner once it holds FullBlock messages and none has come for Quiet
// (a flood's end), or at Batch; a steady stream is stored in blocks of
// Batch or Linger, so that auditd's fsyncs stay few (where the store shares
// a filesystem with the bus's streams, each may also commit the journal
// they are written through). A query asks for what was gathered to be
// stored at once (upToDate).
//
// Invariants: a message is acked only once its events are fsynced; the
// drain reads every fetch to its end, after Stop too (the server ends it
// within FetchWait), so a clean stop leaves nothing delivered and unacked.
const (
	Linger    = 250 * time.Millisecond
	FullBlock = 64 // messages enough to compress well (~60 bytes an event)
	Quiet     = 5 * time.Millisecond
	// MaxLinger bounds Config.Linger well inside AckWait: a message held
	// longer would be delivered again while it waits.
	MaxLinger = AckWait / 10
	// MaxFetchWait bounds Config.FetchWait: Stop waits for the open fetch.
	MaxFetchWait = 5 * time.Second
)

// block is the messages gathered for one Append.
type block struct {
	msgs  []jetstream.Msg
	timer *time.Timer
	due   <-chan time.Time // fires Linger after the first message; nil when empty
	quiet *time.Timer
	still <-chan time.Time // fires Quiet after the last message, from FullBlock on
}

// drainState is the drain's: the block it gathers, and whether it stops.
type drainState struct {
	b      block
	linger time.Duration
	done   <-chan struct{} // the drain's context's; nil once stopping
}

// drain moves events from the stream to the store until ctx ends, then
// reads the fetch in progress to its end, stores what it held, and flushes
// its acks to the server before it returns.
func (d *Daemon) drain(ctx context.Context) {
	defer close(d.drained)
	s := &drainState{b: block{timer: time.NewTimer(time.Hour), quiet: time.NewTimer(time.Hour)}, linger: d.cfg.Linger, done: ctx.Done()}
	s.b.timer.Stop()
	s.b.quiet.Stop()
	defer s.b.timer.Stop()
	defer s.b.quiet.Stop()
	for s.done != nil && ctx.Err() == nil {
		// Twice a block: the server goes on delivering while one is stored.
		wait := jetstream.FetchMaxWait(d.cfg.FetchWait)
		batch, err := d.cons.Fetch(2*d.cfg.Batch, wait)
		if err == nil {
			if !d.gather(s, batch.Messages(), nil) {
				return
			}
			err = batch.Error() // a fetch a status ended (no responders, a leader changing)
		}
		if err != nil && s.done != nil {
			d.log.Warn("fetch", "err", err)
			if !d.gather(s, nil, time.After(100*time.Millisecond)) {
				return
			}
		}
	}
	if d.commit(&s.b) {
		d.nc.FlushTimeout(2 * time.Second) // the acks reach the server before Stop returns
	}
}

// gather adds the messages of ch to the block, and stores the block when
// it should go (see Linger), until ch closes or until fires; with ch nil
// (a pause after a failed fetch), a stop ends it too. False: the store
// failed (reported on stopped), and the drain must end.
func (d *Daemon) gather(s *drainState, ch <-chan jetstream.Msg, until <-chan time.Time) bool {
	for {
		now := false
		select {
		case m, ok := <-ch:
			if !ok {
				return true
			}
			s.b.add(m, s.linger)
			now = d.full(&s.b, ch) || s.done == nil
		case <-until:
			return true
		case <-s.b.due:
			now = true
		case <-s.b.still:
			now = true
		case <-d.flush:
			now = true
		case <-s.done:
			// Stopping: store what is held, then the rest of this fetch as
			// it comes; without a fetch, nothing more comes.
			s.done, s.linger, now = nil, 0, true
			if ch == nil {
				return d.commit(&s.b)
			}
		}
		if now && !d.commit(&s.b) {
			return false
		}
	}
}

// add puts m in b, starting b's linger with its first message.
func (b *block) add(m jetstream.Msg, linger time.Duration) {
	if len(b.msgs) == 0 {
		b.timer.Reset(linger)
		b.due = b.timer.C
	}
	b.msgs = append(b.msgs, m)
}

// full takes into b what is waiting in ch, and reports whether b holds
// Batch messages; from FullBlock on it (re)starts b's quiet timer.
func (d *Daemon) full(b *block, ch <-chan jetstream.Msg) bool {
	for len(b.msgs) < d.cfg.Batch && len(ch) > 0 {
		m, ok := <-ch // there, and the drain is its one reader
		if !ok {
			break
		}
		b.msgs = append(b.msgs, m)
	}
	if len(b.msgs) >= d.cfg.Batch {
		return true
	}
	if len(b.msgs) >= FullBlock {
		b.quiet.Reset(Quiet)
		b.still = b.quiet.C
	}
	return false
}

// commit stores b's events and acks its messages, then empties b, and
// meets any query's request to store (flush) made until then. False: the
// store failed (reported on stopped), and the drain must end.
func (d *Daemon) commit(b *block) bool {
	if len(b.msgs) == 0 {
		select {
		case <-d.flush:
		default:
		}
		return true
	}
	low := uint64(math.MaxUint64) // the block's lowest stream sequence, for upToDate
	for _, m := range b.msgs {
		if md, err := m.Metadata(); err == nil {
			low = min(low, md.Sequence.Stream)
		}
	}
	d.low.Store(low)
	d.storing.Store(true)
	d.begun.Add(1)
	defer d.storing.Store(false)
	b.timer.Stop()
	b.quiet.Stop()
	b.due, b.still = nil, nil
	evs := make([]*wire.AuditEvent, 0, len(b.msgs))
	for _, m := range b.msgs {
		evs = d.events(evs, m)
	}
	if _, err := d.cfg.Store.Append(evs); err != nil {
		// Nothing of these is acked: they come again after a restart.
		d.stopped <- fmt.Errorf("store: %w", err)
		return false
	}
	// Now that they are on disk, ack each message (a work-queue stream takes
	// explicit acks only). A lost ack means the event comes again and is
	// de-duplicated.
	for _, m := range b.msgs {
		if err := m.Ack(); err != nil {
			d.log.Warn("ack (the event will come again and be de-duplicated)", "err", err)
			break
		}
	}
	clear(b.msgs) // acked: their payloads may go
	b.msgs = b.msgs[:0]
	select { // met: a query still waiting asks again
	case <-d.flush:
	default:
	}
	d.commits.Lock()
	close(d.commits.ch)
	d.commits.ch = make(chan struct{})
	d.commits.Unlock()
	return true
}

// BarrierWait bounds how long a query waits for the events published
// before it to be stored (upToDate); barrierIdle is how long it waits
// without progress towards them before it answers with what is stored,
// looking at the stream every barrierPoll (an ack reaches the stream a
// little after the block it acks is stored).
const (
	BarrierWait = 2 * time.Second
	barrierIdle = 250 * time.Millisecond
	barrierPoll = 2 * time.Millisecond
)

// upToDate waits until every event in MOAT_AUDIT when it was called is
// stored — a work-queue stream holds exactly the messages not yet acked,
// so that is when none at or below its last sequence is left — asking the
// drain to store what it has gathered rather than linger. So a query sees
// every event acked before it was asked (a run's, once the run was
// answered). It gives up, and the query answers with what is stored, after
// BarrierWait, when there is no drain (read-only, stopped), or when for
// barrierIdle neither the stream's first message moved on nor the drain
// began or was storing a block holding one of the messages awaited (what is
// left is then most likely not being delivered: held by a lost auditd, it
// comes again after AckWait; the drain's commits of later events do not
// count).
func (d *Daemon) upToDate(ctx context.Context) {
	if d.cons == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, BarrierWait)
	defer cancel()
	s, err := d.js.Stream(ctx, wire.AuditStream)
	if err != nil {
		return
	}
	info := s.CachedInfo()
	target, first, seen := info.State.LastSeq, info.State.FirstSeq, d.begun.Load()
	for progress := time.Now(); info.State.Msgs > 0 && info.State.FirstSeq <= target; {
		if time.Since(progress) > barrierIdle {
			return
		}
		d.commits.Lock()
		next := d.commits.ch
		d.commits.Unlock()
		select {
		case d.flush <- struct{}{}:
		default:
		}
		select {
		case <-ctx.Done():
			return
		case <-d.drained:
			return
		case <-next:
		case <-time.After(barrierPoll):
		}
		if info, err = s.Info(ctx); err != nil {
			return
		}
		begun := d.begun.Load()
		awaited := d.low.Load() <= target && (begun != seen || d.storing.Load())
		if info.State.FirstSeq > first || awaited {
			progress = time.Now()
		}
		first, seen = max(first, info.State.FirstSeq), begun
	}
}
