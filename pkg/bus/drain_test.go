package bus_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/wire"
)

// stopLog records, for each daemon told to stop, which daemons were still
// connected at that moment.
type stopLog struct {
	mu     sync.Mutex
	order  []string
	closed map[string]bool
	seen   map[string][]string // role → roles still connected when it was told
}

// TestDrainStopsCallersFirst: busd's lame duck tells sandboxd, then policyd,
// then profiled, then auditd to stop, each once the one before has gone, so
// a daemon finishing its last requests still reaches the services it calls
// (a check in flight at busd's SIGTERM ended policy-unavailable when
// profiled left before policyd had resolved its profile).
func TestDrainStopsCallersFirst(t *testing.T) {
	s := bustest.Start(t)
	l := &stopLog{closed: map[string]bool{}, seen: map[string][]string{}}
	for _, role := range wire.Services {
		c := s.Client(t, role)
		err := c.OnBusStopping(func() {
			l.mu.Lock()
			l.order = append(l.order, role)
			for _, r := range wire.Services {
				if r != role && !l.closed[r] {
					l.seen[role] = append(l.seen[role], r)
				}
			}
			l.mu.Unlock()
			go func() { // finishing its work takes a moment
				time.Sleep(100 * time.Millisecond)
				l.mu.Lock()
				l.closed[role] = true
				l.mu.Unlock()
				c.Close()
			}()
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	left, err := s.Server.Drain(context.Background(), s.Home, 20*time.Second)
	if err != nil || left != 0 {
		t.Fatalf("drain: %d left, %v", left, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if got, want := l.order, wire.StopOrder; !slices.Equal(got, want) {
		t.Errorf("told to stop in order %v, want %v", got, want)
	}
	for i, role := range wire.StopOrder {
		for _, earlier := range wire.StopOrder[:i] {
			for _, r := range l.seen[role] {
				if r == earlier {
					t.Errorf("%s told to stop while %s, which calls it, was still connected", role, earlier)
				}
			}
		}
	}
}

// TestDrainTellsEveryoneWithinTimeout: a daemon that never leaves does not
// keep the others from being told before busd gives up.
func TestDrainTellsEveryoneWithinTimeout(t *testing.T) {
	s := bustest.Start(t)
	told := make(chan string, len(wire.Services))
	for _, role := range wire.Services {
		c := s.Client(t, role)
		err := c.OnBusStopping(func() {
			told <- role
			if role != wire.StopOrder[0] { // the first never leaves
				go c.Close()
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	left, err := s.Server.Drain(context.Background(), s.Home, 2*time.Second)
	if err != nil || left != 1 {
		t.Errorf("drain: %d left, %v; want 1 (the one that stayed)", left, err)
	}
	got := map[string]bool{}
	for len(got) < len(wire.Services) {
		select {
		case r := <-told:
			got[r] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("told only %v", got)
		}
	}
}
