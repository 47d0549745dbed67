//go:build linux

package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/bus"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/test/testbin"
	"github.com/nats-io/nats.go/jetstream"
)

// node is one busd of a cluster.
type node struct {
	name                   string
	client, route, monitor int
	p                      *proc
}

func (n *node) url() string { return "nats://" + testbin.Addr(n.client) }

// servers is a cluster of busd on loopback, sharing the world's MOAT_HOME.
type servers struct {
	w     *world
	nodes []*node
	extra []string // more busd flags for every node
}

// cluster starts n busd servers routed to each other.
func (w *world) cluster(n int, extra ...string) *servers {
	s := &servers{w: w, extra: extra}
	for i := range n {
		s.nodes = append(s.nodes, &node{name: fmt.Sprintf("busd-%d", i),
			client: testbin.FreePort(w.t), route: testbin.FreePort(w.t), monitor: testbin.FreePort(w.t)})
	}
	for i := range s.nodes {
		s.start(i)
	}
	return s
}

// routes lists every node's route listener.
func (s *servers) routes() string {
	var r []string
	for _, n := range s.nodes {
		r = append(r, testbin.Addr(n.route))
	}
	return strings.Join(r, ",")
}

// start runs node i (again, on the same ports and store).
func (s *servers) start(i int) {
	n := s.nodes[i]
	routes := s.routes()
	args := append([]string{"--name", n.name, "--listen", testbin.Addr(n.client), "--cluster", "moat",
		"--cluster-listen", testbin.Addr(n.route), "--routes", routes, "--monitor", testbin.Addr(n.monitor)}, s.extra...)
	n.p = s.w.start(n.name, nil, "busd", args...)
}

// startConfig runs node i from a busd --config TOML file instead of flags.
func (s *servers) startConfig(i int) {
	n := s.nodes[i]
	var routes []string
	for _, r := range strings.Split(s.routes(), ",") {
		routes = append(routes, fmt.Sprintf("%q", r))
	}
	file := filepath.Join(s.w.t.TempDir(), n.name+".toml")
	conf := fmt.Sprintf("name = %q\nlisten = %q\ncluster = \"moat\"\ncluster-listen = %q\nroutes = [%s]\nmonitor = %q\n",
		n.name, testbin.Addr(n.client), testbin.Addr(n.route), strings.Join(routes, ", "), testbin.Addr(n.monitor))
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		s.w.t.Fatal(err)
	}
	n.p = s.w.start(n.name, nil, "busd", "--config", file)
}

// urls lists the client URLs, node first first.
func (s *servers) urls(first int) string {
	var u []string
	for i := range s.nodes {
		u = append(u, s.nodes[(first+i)%len(s.nodes)].url())
	}
	return strings.Join(u, ",")
}

// streamState is what a test needs of a stream in a cluster.
type streamState struct {
	replicas int    // configured
	leader   string // server name
	current  int    // replicas (leader included) that are current
	msgs     uint64
}

func (s *servers) stream(ctx context.Context, js jetstream.JetStream, name string) (streamState, error) {
	st, err := js.Stream(ctx, name)
	if err != nil {
		return streamState{}, err
	}
	info := st.CachedInfo()
	out := streamState{replicas: info.Config.Replicas, msgs: info.State.Msgs}
	if info.Cluster != nil {
		out.leader = info.Cluster.Leader
		if out.leader != "" {
			out.current = 1
		}
		for _, r := range info.Cluster.Replicas {
			if r.Current && !r.Offline {
				out.current++
			}
		}
	}
	return out, nil
}

// healthy waits until every stream moat keeps has want replicas, a leader
// and all replicas current.
func (s *servers) healthy(within time.Duration, want int) {
	s.w.t.Helper()
	js := adminJS(s.w.t, s.w, s.urls(0))
	testbin.Eventually(s.w.t, within, fmt.Sprintf("streams at R%d with every replica current", want), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		for _, name := range bus.StreamNames() {
			st, err := s.stream(ctx, js, name)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if st.replicas != want || st.current != want {
				return fmt.Errorf("%s: R%d, %d current, leader %q", name, st.replicas, st.current, st.leader)
			}
		}
		return nil
	})
}

// monitor reads a JSON page of a server's monitoring endpoint.
func monitor(port int, page string, out any) error {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://%s/%s", testbin.Addr(port), page))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	return json.Unmarshal(body, out)
}

// routeNames lists the servers a node has routes to.
func routeNames(port int) ([]string, error) {
	var rz struct {
		Routes []struct {
			Name string `json:"remote_name"`
		} `json:"routes"`
	}
	if err := monitor(port, "routez", &rz); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, r := range rz.Routes {
		if !seen[r.Name] {
			seen[r.Name] = true
			out = append(out, r.Name)
		}
	}
	return out, nil
}

// leafCount is how many leaf connections a hub has.
func leafCount(port int) (int, error) {
	var lz struct {
		Leafs int `json:"leafnodes"`
	}
	err := monitor(port, "leafz", &lz)
	return lz.Leafs, err
}

// adminJS is a JetStream context with the admin key.
func adminJS(t testing.TB, w *world, bus string) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(w.dial(home.RoleAdmin, bus).Conn())
	if err != nil {
		t.Fatal(err)
	}
	return js
}
