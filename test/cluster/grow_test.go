//go:build linux

package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/audit"
	"github.com/moatsec/moat/pkg/bus"
	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/moatsec/moat/test/testbin"
)

// A cluster of two keeps one copy of each stream; when a third server
// joins (this one configured by a file), busd raises every stream to three
// replicas by itself, events published before the move included.
func TestStreamsFollowTheCluster(t *testing.T) {
	w := newWorld(t)
	s := &servers{w: w}
	for i := range 3 {
		s.nodes = append(s.nodes, &node{name: fmt.Sprintf("busd-%d", i),
			client: testbin.FreePort(t), route: testbin.FreePort(t), monitor: testbin.FreePort(t)})
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

	s.startConfig(2) // from a config file
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

	// moat status shows the three servers, their routes and the streams' copies.
	cmd := w.cmd("moat", "status", "--json", "--wait", "1s")
	cmd.Env = append(cmd.Env, "MOAT_BUS="+s.urls(2))
	out, _ := cmd.Output() // exit 3: no daemons run here
	var status client.Status
	if err := json.Unmarshal(out, &status); err != nil {
		t.Fatalf("moat status --json: %v\n%s", err, out)
	}
	if len(status.Servers) != 3 {
		t.Fatalf("moat status shows %d servers, want 3:\n%s", len(status.Servers), out)
	}
	var streams []wire.StreamReplica
	for _, b := range status.Servers {
		if len(b.Routes) != 2 || b.Role != "cluster" || b.Cluster != "moat" {
			t.Errorf("server %s: role %s, cluster %q, routes %v", b.Name, b.Role, b.Cluster, b.Routes)
		}
		streams = append(streams, b.Streams...)
	}
	// MOAT_AUDIT, MOAT_RUNS, the anchor and grants buckets, from the meta leader only.
	if want := len(bus.StreamNames()); len(streams) != want {
		t.Fatalf("moat status shows %d streams, want %d:\n%s", len(streams), want, out)
	}
	for _, st := range streams {
		if st.Replicas != 3 || st.Leader == "" || len(st.Peers) != 2 {
			t.Errorf("stream %s: R%d, leader %q, peers %+v", st.Name, st.Replicas, st.Leader, st.Peers)
		}
	}
}
