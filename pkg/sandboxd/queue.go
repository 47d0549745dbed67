package sandboxd

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/moatsec/moat/pkg/service"
	"github.com/moatsec/moat/pkg/wire"
)

// runQueue holds sandboxd's MaxRuns run slots and, past them, a bounded
// queue of runs waiting for one, fair across sessions.
//
// Invariants:
//   - at most max slots are held at once; a slot is either free or held by
//     exactly one run, and a freed slot goes to a waiter, if any, before it
//     is free for anybody else (no barging past the queue);
//   - at most room runs wait at once; past it wait answers errQueueFull;
//   - waiters are served round-robin by session id (FIFO within a session),
//     so one session's burst cannot starve another's single run;
//   - a waiter whose context ends leaves the queue holding no slot: a slot
//     granted to it in the same instant is passed on, never lost.
type runQueue struct {
	mu      sync.Mutex
	free    int // slots nobody holds
	room    int // waiters allowed at once
	waiting int
	byID    map[string][]*waiter // session id → its waiters, oldest first
	ring    []string             // sessions with waiters, in service order
	next    int                  // index in ring of the next session served
}

// waiter is one run waiting for a slot; granted is closed when it has one.
type waiter struct {
	granted chan struct{}
	done    bool // granted, under runQueue.mu
}

func newRunQueue(slots, room int) *runQueue {
	return &runQueue{free: slots, room: room, byID: map[string][]*waiter{}}
}

// errQueueFull is returned by wait when the queue is full.
type errQueueFull struct{ waiting int }

func (e errQueueFull) Error() string { return "the run queue is full" }

// full reports whether a run arriving now would be refused: no free slot
// and no room to wait.
func (q *runQueue) full() (bool, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.free == 0 && q.waiting >= q.room, q.waiting
}

// acquire takes a slot, waiting in the queue under session when none is
// free, until one is handed over or ctx ends (then ctx's cause). It
// returns errQueueFull when the queue has no room.
func (q *runQueue) acquire(ctx context.Context, session string) error {
	q.mu.Lock()
	if q.free > 0 && q.waiting == 0 {
		q.free--
		q.mu.Unlock()
		return nil
	}
	if q.waiting >= q.room {
		n := q.waiting
		q.mu.Unlock()
		return errQueueFull{waiting: n}
	}
	w := &waiter{granted: make(chan struct{})}
	if len(q.byID[session]) == 0 {
		q.ring = append(q.ring, session)
	}
	q.byID[session] = append(q.byID[session], w)
	q.waiting++
	q.mu.Unlock()

	select {
	case <-w.granted:
		return nil
	case <-ctx.Done():
	}
	q.mu.Lock()
	if w.done { // granted as ctx ended: hand the slot on
		q.mu.Unlock()
		q.release()
		return context.Cause(ctx)
	}
	q.remove(session, w)
	q.mu.Unlock()
	return context.Cause(ctx)
}

// release frees a held slot: the next waiter, round-robin by session, gets it.
func (q *runQueue) release() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.ring) == 0 {
		q.free++
		return
	}
	if q.next >= len(q.ring) {
		q.next = 0
	}
	session := q.ring[q.next]
	ws := q.byID[session]
	w := ws[0]
	q.remove(session, w) // advances past session when it has no more waiters
	if len(q.byID[session]) > 0 {
		q.next++ // the session stays in the ring: the next one is served next
	}
	w.done = true
	close(w.granted)
}

// remove takes w out of session's waiters; under q.mu.
func (q *runQueue) remove(session string, w *waiter) {
	ws := q.byID[session]
	for i, x := range ws {
		if x == w {
			ws = append(ws[:i:i], ws[i+1:]...)
			break
		}
	}
	q.waiting--
	if len(ws) > 0 {
		q.byID[session] = ws
		return
	}
	delete(q.byID, session)
	for i, s := range q.ring {
		if s == session {
			q.ring = append(q.ring[:i], q.ring[i+1:]...)
			if i < q.next {
				q.next--
			}
			break
		}
	}
}

// runSlot is a run's place among the MaxRuns commands sandboxd runs at
// once. It is used by the run's own handler goroutine only.
type runSlot struct {
	q    *runQueue
	held bool
}

// take takes a slot, waiting in the queue until ctx ends; see acquire.
func (s *runSlot) take(ctx context.Context, session string) error {
	if s.held {
		return nil
	}
	if err := s.q.acquire(ctx, session); err != nil {
		return err
	}
	s.held = true
	return nil
}

func (s *runSlot) release() {
	if s.held {
		s.q.release()
		s.held = false
	}
}

// DefaultQueueWait bounds a queued run's wait when its caller sent no
// deadline (a plain `nats req`); a caller of the run protocol may still
// cancel sooner.
const DefaultQueueWait = 10 * time.Second

// queueDeadline is when a run of req stops waiting for a slot: the
// caller's deadline (HeaderDeadline), else QueueWait from now.
func (d *Daemon) queueDeadline(req *service.Request) (time.Time, error) {
	v := req.Header(wire.HeaderDeadline)
	if v == "" {
		return time.Now().Add(d.cfg.QueueWait), nil
	}
	if len(v) > 64 {
		return time.Time{}, wire.Errorf(wire.CodeBadRequest, "header %s is %d bytes: send an RFC 3339 time", wire.HeaderDeadline, len(v))
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, wire.Errorf(wire.CodeBadRequest, "header %s %q is not an RFC 3339 time: send one, or leave it out", wire.HeaderDeadline, v)
	}
	return t, nil
}

// queueFull is the 503 of a run that finds every slot held and the queue full.
func (d *Daemon) queueFull(waiting int) error {
	return wire.Errorf(wire.CodeUnavailable, "sandboxd is running %d commands, its limit, and its queue is full (%d runs waiting, its limit %d): nothing ran; retry, or start another copy",
		d.cfg.MaxRuns, waiting, d.cfg.MaxQueue)
}

// errQueueDeadline is the cause of a queued run's wait ending at its deadline.
var errQueueDeadline = errors.New("the caller's deadline passed")

// waitSlot takes the run's slot, waiting in the queue until deadline: a 408
// when the deadline passes, a 503 when the queue is full.
func (d *Daemon) waitSlot(ctx context.Context, slot *runSlot, session string, deadline time.Time) error {
	start := time.Now()
	ctx, cancel := context.WithDeadlineCause(ctx, deadline, errQueueDeadline)
	defer cancel()
	err := slot.take(ctx, session)
	var full errQueueFull
	switch {
	case err == nil:
		return nil
	case errors.As(err, &full):
		return d.queueFull(full.waiting)
	case errors.Is(err, errQueueDeadline):
		return wire.Errorf(wire.CodeTimeout, "waited %s for one of sandboxd's %d run slots and the caller's deadline passed: nothing ran; retry later, or start another copy",
			time.Since(start).Round(time.Millisecond), d.cfg.MaxRuns)
	}
	return wire.Errorf(wire.CodeUnavailable, "stopped waiting for a run slot (%v): nothing ran", err)
}

// inflight is the service's request limit: every run slot and every place
// in the queue, as many again deciding, and room for a burst, so that past
// the run slots it is the queue that answers 503, naming its length.
func inflight(cfg Config) int { return 2*(cfg.MaxRuns+cfg.MaxQueue) + 64 }
