//go:build linux

package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/audit"
	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/moatsec/moat/test/testbin"
)

// load runs commands and publishes audit events until stopped, keeping
// what was acked and every error.
type load struct {
	mu       sync.Mutex
	ran      map[string]*wire.RunResult // request id → result
	failed   map[string]error           // request id → error
	acked    map[string]bool            // event ids JetStream acked
	unacked  int
	lastOK   atomic.Int64 // unix ms of the last answer
	maxGap   atomic.Int64 // longest ms without an answer
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	runners  int
	marker   string
	sessions string
}

// startLoad runs runners loops of `moat run` (each appending its request id
// to marker in the workspace) and one loop of audit events, each on its own
// connection to the servers listed in bus.
func startLoad(t *testing.T, w *world, s *servers, runners int) *load {
	l := &load{ran: map[string]*wire.RunResult{}, failed: map[string]error{}, acked: map[string]bool{},
		runners: runners, marker: "runs.log", sessions: wire.NewID()}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.lastOK.Store(time.Now().UnixMilli())
	for i := range runners {
		c := w.dial(home.RoleClient, s.urls(i))
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				id := wire.NewID()
				rctx, rcancel := context.WithTimeout(context.Background(), 60*time.Second)
				res, err := c.Run(rctx, &wire.RunRequest{RequestID: id, SessionID: l.sessions, Profile: "workspace-write",
					Workspace: w.ws, Cwd: w.ws, Argv: []string{"sh", "-c", "echo " + id + " >> " + l.marker}}, nil)
				rcancel()
				l.record(id, res, err)
			}
		}()
	}
	c := w.dial(home.RoleBenchd, s.urls(runners))
	pub, err := audit.NewPublisher(c.Conn(), home.RoleBenchd, "cluster-load")
	if err != nil {
		t.Fatal(err)
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for ctx.Err() == nil {
			ev := &wire.AuditEvent{Kind: "bench.load", SessionID: l.sessions}
			err := pub.Publish(context.Background(), ev)
			l.mu.Lock()
			if err == nil {
				l.acked[ev.ID] = true
			} else {
				l.unacked++
			}
			l.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return l
}

func (l *load) record(id string, res *wire.RunResult, err error) {
	now := time.Now().UnixMilli()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.failed[id] = err
		return
	}
	l.ran[id] = res
	if gap := now - l.lastOK.Swap(now); gap > l.maxGap.Load() {
		l.maxGap.Store(gap)
	}
}

// stop ends the load and waits for its loops.
func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

// counts is (runs answered, runs failed, events acked).
func (l *load) counts() (int, int, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.ran), len(l.failed), len(l.acked)
}

// checkErrors: every failed request got a clear error — a wire code a
// caller can act on and a message saying what happened.
func (l *load) checkErrors(t *testing.T) map[int]int {
	t.Helper()
	byCode := map[int]int{}
	for id, err := range l.failed {
		var we *wire.Error
		if !errors.As(err, &we) || we.Message == "" {
			t.Errorf("run %s failed without a clear error: %v", id, err)
			continue
		}
		switch we.Code {
		case wire.CodeTimeout, wire.CodeUnavailable, wire.CodeConflict:
		default:
			t.Errorf("run %s failed with %v, want 408, 409 or 503", id, err)
		}
		byCode[we.Code]++
		t.Logf("run %s failed: %v", id, err)
	}
	return byCode
}

// auditOf pages through the store for every event matching q.
func auditOf(t *testing.T, c *client.Client, q wire.AuditQuery) []wire.AuditEvent {
	t.Helper()
	var out []wire.AuditEvent
	q.Limit = wire.MaxAuditPage
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		page, err := c.AuditQuery(ctx, &q)
		cancel()
		if err != nil {
			t.Fatalf("audit query %+v: %v", q, err)
		}
		for _, e := range page.Events {
			out = append(out, e.Event)
		}
		if page.Next == 0 {
			return out
		}
		q.Cursor = page.Next
	}
}

// drained waits until auditd has stored everything in MOAT_AUDIT.
func drained(t *testing.T, w *world, s *servers) {
	t.Helper()
	js := adminJS(t, w, s.urls(0))
	testbin.Eventually(t, 90*time.Second, "auditd drained "+wire.AuditStream, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		st, err := s.stream(ctx, js, wire.AuditStream)
		if err != nil {
			return err
		}
		if st.msgs != 0 {
			return fmt.Errorf("%d events not yet stored", st.msgs)
		}
		return nil
	})
}

// lines counts each line of text.
func lines(text string) map[string]int {
	out := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		if l != "" {
			out[l]++
		}
	}
	return out
}
