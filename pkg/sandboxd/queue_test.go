package sandboxd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitFor polls until the queue holds n waiters (no timing asserted: the
// test's own timeout bounds it).
func waitFor(q *runQueue, n int) {
	for {
		q.mu.Lock()
		w := q.waiting
		q.mu.Unlock()
		if w == n {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// A freed slot goes round-robin across sessions: one session's burst of
// five waits behind the single runs of two others that queued after it.
func TestRunQueueFairAcrossSessions(t *testing.T) {
	q := newRunQueue(1, 16)
	if err := q.acquire(context.Background(), "holder"); err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		order []string
		wg    sync.WaitGroup
	)
	queued := 0
	enqueue := func(session string, i int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := q.acquire(context.Background(), session); err != nil {
				t.Errorf("%s: %v", session, err)
				return
			}
			mu.Lock()
			order = append(order, fmt.Sprintf("%s%d", session, i))
			mu.Unlock()
			q.release()
		}()
		queued++
		waitFor(q, queued) // the queue sees them in this order
	}
	for i := range 5 {
		enqueue("a", i)
	}
	enqueue("b", 0)
	enqueue("c", 0)
	q.release() // the holder's run ends: the waiters run one at a time
	wg.Wait()
	got := strings.Join(order, " ")
	if want := "a0 b0 c0 a1 a2 a3 a4"; got != want {
		t.Fatalf("served %q, want %q (round-robin by session, FIFO within one)", got, want)
	}
	if q.free != 1 || q.waiting != 0 || len(q.ring) != 0 || len(q.byID) != 0 {
		t.Fatalf("after: free %d, waiting %d, ring %v, sessions %d; want the one slot free and nothing queued", q.free, q.waiting, q.ring, len(q.byID))
	}
}

// A waiter whose deadline passes leaves the queue with the deadline as its
// cause and holds nothing: the slot freed afterwards is free, not lost.
func TestRunQueueDeadline(t *testing.T) {
	q := newRunQueue(1, 4)
	if err := q.acquire(context.Background(), "holder"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithDeadlineCause(context.Background(), time.Now().Add(20*time.Millisecond), errQueueDeadline)
	defer cancel()
	if err := q.acquire(ctx, "late"); !errors.Is(err, errQueueDeadline) {
		t.Fatalf("acquire past its deadline: %v, want %v", err, errQueueDeadline)
	}
	if q.waiting != 0 || len(q.ring) != 0 {
		t.Fatalf("the late waiter is still queued: waiting %d, ring %v", q.waiting, q.ring)
	}
	q.release()
	if q.free != 1 {
		t.Fatalf("free slots %d after the holder released, want 1", q.free)
	}
}

// Only a full queue refuses, and the refusal names the queue's length.
func TestRunQueueFull(t *testing.T) {
	d := &Daemon{cfg: Config{MaxRuns: 1, MaxQueue: 2}}
	q := newRunQueue(1, 2)
	if err := q.acquire(context.Background(), "holder"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); q.acquire(ctx, "s") }()
		waitFor(q, i+1)
	}
	if full, n := q.full(); !full || n != 2 {
		t.Fatalf("full() = %v, %d; want true, 2", full, n)
	}
	slot := &runSlot{q: q}
	err := d.waitSlot(context.Background(), slot, "other", time.Now().Add(time.Hour))
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "2 runs waiting") {
		t.Fatalf("a run past a full queue: %v, want a 503 naming 2 runs waiting", err)
	}
	if slot.held {
		t.Fatal("a refused run holds a slot")
	}
	cancel()
	wg.Wait()
	q.release()
	if q.free != 1 || q.waiting != 0 {
		t.Fatalf("after: free %d, waiting %d; want 1, 0", q.free, q.waiting)
	}
}

// Under churn — many sessions, waiters giving up at random — no slot is
// lost or handed out twice: never more than the slots run at once, every
// waiter either runs once or gives up, and every slot is free at the end.
func TestRunQueueNoLostOrDuplicateRun(t *testing.T) {
	const slots, runs = 3, 400
	q := newRunQueue(slots, runs)
	var running, maxRunning, ran, gaveUp atomic.Int64
	var wg sync.WaitGroup
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if i%5 == 0 { // a fifth give up soon, some as they are granted
				go func() { time.Sleep(time.Duration(i%7) * 100 * time.Microsecond); cancel() }()
			}
			if err := q.acquire(ctx, fmt.Sprintf("s%d", i%7)); err != nil {
				gaveUp.Add(1)
				return
			}
			n := running.Add(1)
			for {
				m := maxRunning.Load()
				if n <= m || maxRunning.CompareAndSwap(m, n) {
					break
				}
			}
			ran.Add(1)
			time.Sleep(50 * time.Microsecond)
			running.Add(-1)
			q.release()
		}()
	}
	wg.Wait()
	if ran.Load()+gaveUp.Load() != runs {
		t.Fatalf("%d ran + %d gave up != %d runs", ran.Load(), gaveUp.Load(), runs)
	}
	if maxRunning.Load() > slots {
		t.Fatalf("%d ran at once, more than the %d slots", maxRunning.Load(), slots)
	}
	if q.free != slots || q.waiting != 0 || len(q.ring) != 0 || len(q.byID) != 0 {
		t.Fatalf("after: free %d of %d, waiting %d, ring %v; a slot was lost or duplicated", q.free, slots, q.waiting, q.ring)
	}
	if ran.Load() < runs*4/5 {
		t.Fatalf("only %d of %d runs ran", ran.Load(), runs)
	}
}
