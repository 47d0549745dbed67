//go:build linux

package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/test/testbin"
)

// Daemons started with the cluster (foreman starts everything at once) wait
// for JetStream to elect its leaders instead of giving up: auditd, started
// while one server of three is up and JetStream cannot answer yet, serves
// once the others come.
func TestDaemonsStartWithTheCluster(t *testing.T) {
	w := newWorld(t)
	s := &servers{w: w}
	for i := range 3 {
		s.nodes = append(s.nodes, &node{name: fmt.Sprintf("busd-%d", i), client: testbin.FreePort(t), route: testbin.FreePort(t), monitor: testbin.FreePort(t)})
	}
	s.start(0)
	w.daemon("auditd", "auditd", s.urls(0))
	time.Sleep(5 * time.Second) // auditd asks JetStream, which has no leader
	s.start(1)
	s.start(2)
	s.healthy(90*time.Second, 3)
	waitServices(t, w.dial(home.RoleClient, s.urls(1)), map[string]int{"auditd": 1})
}
