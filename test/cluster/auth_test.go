//go:build linux

package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/moatsec/moat/test/testbin"
)

// A server with another route secret never joins: the cluster's servers
// keep routes to each other only, and the stranger has none.
func TestWrongRouteSecretCannotJoin(t *testing.T) {
	w := newWorld(t)
	s := w.cluster(2)
	testbin.Eventually(t, 30*time.Second, "two servers routed", func() error {
		names, err := routeNames(s.nodes[0].monitor)
		if err != nil || !slices.Contains(names, "busd-1") {
			return fmt.Errorf("busd-0 routes to %v (%v)", names, err)
		}
		return nil
	})
	other := filepath.Join(t.TempDir(), "route.secret")
	if err := os.WriteFile(other, []byte("not-the-cluster-secret-at-all\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stranger := &node{name: "stranger", client: testbin.FreePort(t), route: testbin.FreePort(t), monitor: testbin.FreePort(t)}
	s.nodes = append(s.nodes, stranger)
	s.extra = []string{"--route-secret", other}
	s.start(2)
	testbin.Eventually(t, 15*time.Second, "the stranger up", func() error {
		_, err := routeNames(stranger.monitor)
		return err
	})
	time.Sleep(5 * time.Second) // route attempts are made every second
	for _, n := range s.nodes[:2] {
		names, err := routeNames(n.monitor)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(names, "stranger") {
			t.Errorf("%s has a route to the server with the wrong secret", n.name)
		}
	}
	if names, _ := routeNames(stranger.monitor); len(names) != 0 {
		t.Errorf("the stranger has routes to %v", names)
	}
}

// A worker's leaf connects only with a key the hub lists in MOAT_HOME/leaves:
// an unknown key, and a component's key used as a leaf key, are refused.
func TestLeafNeedsItsKey(t *testing.T) {
	w := newWorld(t)
	known := filepath.Join(w.home.CredsDir(), "leaf-known.nk")
	pub := leafKey(t, w, known)
	if err := os.MkdirAll(filepath.Join(w.home.Dir, "leaves"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w.home.Dir, "leaves", "known.pub"), []byte(pub+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	unknown := filepath.Join(t.TempDir(), "leaf-unknown.nk")
	leafKey(t, w, unknown)
	hubLeaf, hubMon := testbin.FreePort(t), testbin.FreePort(t)
	w.start("hub", nil, "busd", "--listen", testbin.Addr(testbin.FreePort(t)), "--leaf-listen", testbin.Addr(hubLeaf), "--monitor", testbin.Addr(hubMon))
	for _, bad := range []struct{ name, key string }{{"unknown key", unknown}, {"sandboxd's key", w.home.Creds("sandboxd")}} {
		w.start("leaf with "+bad.name, nil, "busd", "--listen", testbin.Addr(testbin.FreePort(t)), "--hub", testbin.Addr(hubLeaf), "--leaf-key", bad.key)
	}
	testbin.Eventually(t, 15*time.Second, "the hub up", func() error { _, err := leafCount(hubMon); return err })
	time.Sleep(4 * time.Second) // leaves retry every second
	if n, _ := leafCount(hubMon); n != 0 {
		t.Fatalf("the hub admitted %d leaves without a listed key", n)
	}
	w.start("leaf with its key", nil, "busd", "--listen", testbin.Addr(testbin.FreePort(t)), "--hub", testbin.Addr(hubLeaf), "--leaf-key", known)
	testbin.Eventually(t, 20*time.Second, "the listed leaf connected", func() error {
		if n, err := leafCount(hubMon); err != nil || n != 1 {
			return fmt.Errorf("%d leaves (%v)", n, err)
		}
		return nil
	})
}

// leafKey makes a worker key with `busd leaf-key` and returns its public key.
func leafKey(t testing.TB, w *world, file string) string {
	t.Helper()
	out, err := w.cmd("busd", "leaf-key", "--out", file).Output()
	if err != nil {
		t.Fatalf("busd leaf-key: %v", err)
	}
	pub := string(out[:len(out)-1])
	if len(pub) != 56 || pub[0] != 'U' {
		t.Fatalf("busd leaf-key printed %q, want a public user nkey", out)
	}
	return pub
}
