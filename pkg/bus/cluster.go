package bus

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// Topology says where a busd sits. The zero value is one server alone, as
// before clustering existed. docs/operations.md tells how to set each up.
//
//   - Cluster: servers joined by routes (Cluster, RouteListen, Routes). The
//     routes authenticate with one shared secret, the file RouteSecret; a
//     server without it cannot join. JetStream is clustered: moat's streams
//     get three replicas once three servers are up ([Server.reconcile]).
//   - Hub: a server (alone or in a cluster) that takes worker hosts' leaf
//     connections on LeafListen, each authenticated by its own nkey listed in
//     MOAT_HOME/leaves/<host>.pub, with [LeafPermissions].
//   - Leaf: a worker host's busd (Hub set), connected to a hub with its own
//     nkey (LeafKey), without JetStream of its own: audit and policy stay
//     central, while runs and profile resolution stay on the host (see
//     [LeafLocal]).
type Topology struct {
	Name        string   // server name, unique in a cluster; default moat-bus, or busd-<route port> in a cluster
	Cluster     string   // cluster name; empty: no cluster
	RouteListen string   // host:port of the route listener (cluster only)
	Routes      []string // seed routes, host:port each; a server may list itself
	RouteSecret string   // file with the route password; default MOAT_HOME/creds/route.secret
	LeafListen  string   // host:port taking worker hosts' leaf connections; empty: none
	Hub         []string // leaf only: the hub's leaf listeners, host:port or nats-leaf://host:port
	LeafKey     string   // leaf only: this host's nkey seed; default MOAT_HOME/creds/leaf.nk
	Monitor     string   // host:port of the NATS monitoring endpoint (/varz, /routez, /jsz); empty: off
	StoreDir    string   // JetStream store; default MOAT_HOME/bus, or MOAT_HOME/bus/<name> in a cluster
	// LeaveCluster lets a server alone run on a store a cluster left, its
	// streams lowered to one replica (shrink.go); without it busd refuses.
	LeaveCluster bool
}

// RouteUser is the user name routes authenticate with; the password is the
// route secret.
const RouteUser = "moat-route"

// LeafLocal are the subjects that never cross a leaf connection: a worker
// host's runs, their output and profile resolution (which reads the
// workspace) are served on the host itself, and no central request reaches
// a worker's sandboxd.
var LeafLocal = []string{"moat.sandbox.>", "moat.profile.>", "moat.run.>"}

// Clustered reports whether t joins a cluster.
func (t Topology) Clustered() bool { return t.Cluster != "" }

// IsLeaf reports whether t is a worker host's leaf.
func (t Topology) IsLeaf() bool { return len(t.Hub) > 0 }

// LeavesDir holds the public nkeys of the worker hosts a hub admits, one
// <host>.pub each.
func LeavesDir(h home.Home) string { return filepath.Join(h.Dir, "leaves") }

// RouteSecretFile is where the route secret is kept by default.
func RouteSecretFile(h home.Home) string { return filepath.Join(h.CredsDir(), "route.secret") }

// LeafKeyFile is where a worker host keeps its leaf nkey seed by default.
func LeafKeyFile(h home.Home) string { return filepath.Join(h.CredsDir(), "leaf.nk") }

// apply sets opts for t.
func (t Topology) apply(opts *server.Options, h home.Home) error {
	if t.Clustered() && t.IsLeaf() {
		return errors.New("a busd is either in a cluster or a worker's leaf, not both: drop --cluster or --hub")
	}
	if t.Name != "" {
		opts.ServerName = t.Name
	}
	if t.Monitor != "" {
		host, port, err := hostPort("monitor", t.Monitor)
		if err != nil {
			return err
		}
		opts.HTTPHost, opts.HTTPPort = host, port
	}
	if t.StoreDir != "" {
		opts.StoreDir = t.StoreDir
	}
	if t.Clustered() {
		if err := t.cluster(opts, h); err != nil {
			return err
		}
	}
	if t.LeafListen != "" {
		if err := t.hub(opts, h); err != nil {
			return err
		}
	}
	if t.IsLeaf() {
		return t.leaf(opts, h)
	}
	return nil
}

func (t Topology) cluster(opts *server.Options, h home.Home) error {
	if t.RouteListen == "" {
		return errors.New("a cluster needs a route listener: pass --cluster-listen HOST:PORT")
	}
	host, port, err := hostPort("cluster listen", t.RouteListen)
	if err != nil {
		return err
	}
	file := t.RouteSecret
	if file == "" {
		file = RouteSecretFile(h)
	}
	secret, err := RouteSecret(file)
	if err != nil {
		return err
	}
	if t.Name == "" {
		opts.ServerName = fmt.Sprintf("busd-%d", port)
	}
	if t.StoreDir == "" {
		opts.StoreDir = filepath.Join(h.BusDir(), opts.ServerName)
	}
	opts.Cluster = server.ClusterOpts{Name: t.Cluster, Host: host, Port: port,
		Username: RouteUser, Password: secret, ConnectRetries: -1}
	for _, r := range t.Routes {
		r = strings.TrimPrefix(r, "nats-route://")
		if _, _, err := hostPort("route", r); err != nil {
			return err
		}
		if r == t.RouteListen {
			// JetStream sizes a new cluster by its routes: a route to
			// itself would count a server that never answers.
			continue
		}
		opts.Routes = append(opts.Routes, &url.URL{Scheme: "nats-route", Host: r, User: url.UserPassword(RouteUser, secret)})
	}
	return nil
}

// hub admits every worker key in MOAT_HOME/leaves, on leaf connections only.
func (t Topology) hub(opts *server.Options, h home.Home) error {
	host, port, err := hostPort("leaf listen", t.LeafListen)
	if err != nil {
		return err
	}
	opts.LeafNode.Host, opts.LeafNode.Port = host, port
	keys, err := LeafKeys(h)
	if err != nil {
		return err
	}
	for _, k := range keys {
		opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: k, Permissions: LeafPermissions(k),
			AllowedConnectionTypes: map[string]struct{}{"LEAFNODE": {}}})
	}
	return nil
}

// leaf connects to the hub with this host's key, without JetStream.
func (t Topology) leaf(opts *server.Options, h home.Home) error {
	file := t.LeafKey
	if file == "" {
		file = LeafKeyFile(h)
	}
	seed, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read this worker's leaf key: %w; make one with `busd leaf-key` and copy its .pub to the hub's MOAT_HOME/leaves/", err)
	}
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(seed))))
	if err != nil {
		return fmt.Errorf("leaf key %s: %w; make one with `busd leaf-key`", file, err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return fmt.Errorf("leaf key %s: %w", file, err)
	}
	// The cluster name tells this host's clients its inbox tag (wire.LeafCluster).
	opts.Cluster.Name = wire.LeafCluster(pub)
	remote := &server.RemoteLeafOpts{Nkey: strings.TrimSpace(string(seed)), DenyImports: LeafLocal, DenyExports: LeafLocal}
	for _, u := range t.Hub {
		u = strings.TrimPrefix(u, "nats-leaf://")
		if _, _, err := hostPort("hub", u); err != nil {
			return err
		}
		remote.URLs = append(remote.URLs, &url.URL{Scheme: "nats-leaf", Host: u})
	}
	opts.LeafNode.Remotes = append(opts.LeafNode.Remotes, remote)
	opts.JetStream = false
	return nil
}

// LeafKeys reads the public nkeys in MOAT_HOME/leaves/*.pub.
func LeafKeys(h home.Home) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(LeavesDir(h), "*.pub"))
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read leaf key: %w", err)
		}
		k := strings.TrimSpace(string(data))
		if !strings.HasPrefix(k, "U") || len(k) != 56 {
			return nil, fmt.Errorf("leaf key %s is not a public user nkey (U…, 56 characters): put the line `busd leaf-key` printed there", f)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// RouteSecret reads the route secret in file, creating it (random, mode
// 0600) when it does not exist. Every server of a cluster needs the same
// file: the operator copies it with the rest of MOAT_HOME/creds.
func RouteSecret(file string) (string, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		if err := createSecret(file); err != nil {
			return "", err
		}
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return "", fmt.Errorf("read the route secret: %w", err)
	}
	s := strings.TrimSpace(string(data))
	if len(s) < 16 || strings.ContainsAny(s, "@:/ ") {
		return "", fmt.Errorf("route secret %s is too short or holds @ : / or spaces: delete it and let busd make one, then copy it to every server", file)
	}
	return s, nil
}

// createSecret writes a fresh secret to file unless one appears meanwhile
// (servers started together on one MOAT_HOME agree on the first).
func createSecret(file string) error {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".route-secret-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(base64.RawURLEncoding.EncodeToString(b) + "\n"); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), file); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("write the route secret: %w", err)
	}
	return nil
}

func hostPort(what, addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%s address %q: %w; use HOST:PORT", what, addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%s address %q: bad port", what, addr)
	}
	if port == 0 {
		port = -1 // nats-server: a random port
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return host, port, nil
}

// Name is the server's name in its cluster.
func (s *Server) Name() string { return s.ns.Name() }
