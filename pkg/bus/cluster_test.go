package bus

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/moatsec/moat/pkg/home"
	"github.com/nats-io/nats-server/v2/server"
)

// Servers started together on one MOAT_HOME agree on one route secret.
func TestRouteSecretMadeOnce(t *testing.T) {
	file := filepath.Join(t.TempDir(), "creds", "route.secret")
	var wg sync.WaitGroup
	secrets := make([]string, 8)
	errs := make([]error, 8)
	for i := range secrets {
		wg.Go(func() { secrets[i], errs[i] = RouteSecret(file) })
	}
	wg.Wait()
	for i := range secrets {
		if errs[i] != nil || secrets[i] != secrets[0] || len(secrets[0]) < 40 {
			t.Fatalf("secret %d = %q (%v), first %q", i, secrets[i], errs[i], secrets[0])
		}
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Fatalf("route secret mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestRouteSecretRefusesWeakOnes(t *testing.T) {
	for _, bad := range []string{"short", "has spaces in the secret", "user:password@host-long-enough"} {
		file := filepath.Join(t.TempDir(), "route.secret")
		os.WriteFile(file, []byte(bad), 0o600)
		if _, err := RouteSecret(file); err == nil {
			t.Errorf("route secret %q accepted", bad)
		}
	}
}

func TestTopologyRefuses(t *testing.T) {
	h, _ := home.New(t.TempDir())
	os.MkdirAll(LeavesDir(h), 0o700)
	tests := []struct {
		name string
		t    Topology
		want string
	}{
		{"cluster and leaf", Topology{Cluster: "moat", RouteListen: "127.0.0.1:0", Hub: []string{"127.0.0.1:7422"}}, "not both"},
		{"cluster without a route listener", Topology{Cluster: "moat"}, "--cluster-listen"},
		{"a route that is no address", Topology{Cluster: "moat", RouteListen: "127.0.0.1:0", Routes: []string{"nowhere"}}, "HOST:PORT"},
		{"a leaf without its key", Topology{Hub: []string{"127.0.0.1:7422"}, LeafKey: filepath.Join(h.Dir, "none.nk")}, "busd leaf-key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.t.apply(&server.Options{}, h)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one saying %q", err, tt.want)
			}
		})
	}
	os.WriteFile(filepath.Join(LeavesDir(h), "w.pub"), []byte("not a key\n"), 0o600)
	if err := (Topology{LeafListen: "127.0.0.1:0"}).apply(&server.Options{}, h); err == nil {
		t.Fatal("a hub admitted a leaf key that is no public nkey")
	}
}

// A route to the server itself is dropped: JetStream would size the
// cluster by it and wait for a server that never answers.
func TestRoutesDropSelf(t *testing.T) {
	h, _ := home.New(t.TempDir())
	opts := &server.Options{}
	top := Topology{Cluster: "moat", RouteListen: "127.0.0.1:6222", Routes: []string{"127.0.0.1:6222", "127.0.0.1:6223", "nats-route://127.0.0.1:6224"},
		RouteSecret: filepath.Join(h.Dir, "route.secret")}
	if err := top.apply(opts, h); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range opts.Routes {
		got = append(got, r.Host)
		if r.User.Username() != RouteUser {
			t.Errorf("route %s without the route user", r.Host)
		}
	}
	if strings.Join(got, ",") != "127.0.0.1:6223,127.0.0.1:6224" {
		t.Fatalf("routes %v", got)
	}
	if opts.ServerName != "busd-6222" || opts.StoreDir != filepath.Join(h.BusDir(), "busd-6222") {
		t.Fatalf("name %q store %q", opts.ServerName, opts.StoreDir)
	}
}
