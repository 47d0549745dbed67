//go:build linux

package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/audit"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
)

// A cluster of two keeps one copy of each stream; when a third server
// joins, busd raises every stream to three replicas by itself, events
// published before the move included.
func TestStreamsFollowTheCluster(t *testing.T) {
	w := newWorld(t)
	s := &servers{w: w}
	for i := range 3 {
		s.nodes = append(s.nodes, &node{name: fmt.Sprintf("busd-%d", i),
			client: freePort(t), route: freePort(t), monitor: freePort(t)})
	}
	s.start(0) // every server lists the three routes, the third comes later
	s.start(1)
	s.healthy(60*time.Second, 1)

	c := w.dial(home.RoleBenchd, s.urls(0))
	pub, err := audit.NewPublisher(c.Conn(), home.RoleBenchd, "grow-test")
	if err != nil {
		t.Fatal(err)
	}
	ev := &wire.AuditEvent{Kind: "bench.grow"}
	if err := pub.Publish(context.Background(), ev); err != nil {
		t.Fatalf("publish on one server: %v", err)
	}

	s.start(2)
	s.healthy(90*time.Second, 3)
	js := adminJS(t, w, s.urls(1))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := s.stream(ctx, js, wire.AuditStream)
	if err != nil {
		t.Fatal(err)
	}
	if st.msgs != 1 {
		t.Fatalf("%s holds %d events after moving to R3, want the 1 published before", wire.AuditStream, st.msgs)
	}
}
