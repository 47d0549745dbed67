//go:build linux

package sandbox

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/moatsec/moat/pkg/egress/egresstest"
	"github.com/moatsec/moat/pkg/profile"
	"github.com/moatsec/moat/pkg/wire"
)

// TestTrustedNarrowedNetwork: trusted reaches the host's own network, but
// a trusted profile whose network is narrowed — an allowlist or a deny
// list, from profiles.toml or a .moat-profile — reaches out only through
// its run's egress proxy, with those lists. The effect is read at a
// service on the host's loopback: trusted itself reaches it (the control),
// a narrowed one does not, and reaches an allowed name through the proxy.
func TestTrustedNarrowedNetwork(t *testing.T) {
	egresstest.Tool(t, "curl")
	egresstest.Tool(t, "python3")
	w := newNetWorld(t)
	host, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	accepted := make(chan struct{}, 16)
	go acceptAll(host, accepted)
	heard := func() int {
		// The script's connect is done when it exits; the accept may lag.
		n := 0
		for {
			select {
			case <-accepted:
				n++
			default:
				return n
			}
		}
	}

	home := t.TempDir()
	toml := `[profiles.admin-allow]
extends = "trusted"
net = "allowlist"
net_allow = ["allowed.test"]
[profiles.admin-deny]
extends = "trusted"
net_deny = ["blocked.test"]
`
	os.WriteFile(filepath.Join(home, "profiles.toml"), []byte(toml), 0o600)
	narrowed := filepath.Join(w.ws, "narrowed")
	os.MkdirAll(narrowed, 0o755)
	os.WriteFile(filepath.Join(narrowed, ".moat-profile"), []byte(`net_allow = ["allowed.test"]`+"\n"), 0o644)
	r, err := profile.NewResolver(profile.Options{MoatHome: home, ProfilesFile: filepath.Join(home, "profiles.toml"), AllowTrusted: true})
	if err != nil {
		t.Fatal(err)
	}
	for name, req := range map[string]*wire.ResolveRequest{
		"trusted":             {Profile: "trusted", Workspace: w.ws},
		"admin-allow":         {Profile: "admin-allow", Workspace: w.ws},
		"admin-deny":          {Profile: "admin-deny", Workspace: w.ws},
		"trusted, .moat-file": {Profile: "trusted", Workspace: narrowed},
	} {
		if w.profs[name], err = r.Resolve(req); err != nil {
			t.Fatal(err)
		}
	}
	port := host.Addr().(*net.TCPAddr).Port
	connect := fmt.Sprintf(`python3 -c 'import socket; socket.create_connection(("127.0.0.1", %d), timeout=3).close()' 2>/dev/null && echo reached || echo refused`, port)

	if res := w.run(t, "trusted", connect, nil); string(res.Stdout) != "reached\n" || heard() != 1 {
		t.Fatalf("trusted, the control: %q (%s); the host's service must hear it", res.Stdout, res.Stderr)
	}
	for _, name := range []string{"admin-allow", "admin-deny", "trusted, .moat-file"} {
		t.Run(name, func(t *testing.T) {
			res := w.run(t, name, connect, nil)
			if n := heard(); n != 0 || string(res.Stdout) != "refused\n" {
				t.Fatalf("the host's loopback service heard %d connections (%q, %s): the network was not narrowed", n, res.Stdout, res.Stderr)
			}
			res = w.run(t, name, "curl -sS --cacert "+w.ca+" https://allowed.test/t", nil)
			if res.ExitCode != 0 || string(res.Stdout) != "hello from allowed.test /t" {
				t.Fatalf("an allowed name through the proxy: exit %d, %q, %s", res.ExitCode, res.Stdout, res.Stderr)
			}
			res = w.run(t, name, "curl -sS -o /dev/null -w '%{http_code}' http://blocked.test/", nil)
			if string(res.Stdout) != "403" || len(res.NetDenied) == 0 {
				t.Fatalf("blocked.test: %q, denied %v, %s", res.Stdout, res.NetDenied, res.Stderr)
			}
		})
	}
}
