//go:build linux

package sandboxd_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/egress/egresstest"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/policy"
	"github.com/moatsec/moat/pkg/policyd"
	"github.com/moatsec/moat/pkg/profile"
	"github.com/moatsec/moat/pkg/profiled"
	"github.com/moatsec/moat/pkg/sandbox"
	"github.com/moatsec/moat/pkg/sandboxd"
	"github.com/moatsec/moat/pkg/wire"
)

var quiet = slog.New(slog.DiscardHandler)

// netStack is the whole pipeline in process — a real bus, profiled,
// policyd with a rules file, sandboxd running real sandboxes — whose runs'
// egress proxies reach only the stand-in internet on loopback.
type netStack struct {
	*bustest.Stack
	ws    string
	rules string // the rules file policyd loads
	watch *policyd.RulesWatcher
	net   *egresstest.Net
	srv   map[string]*egresstest.Server
}

// startNetStack starts it with the given profiles.toml and rules file;
// approvalTimeout, when given, is policyd's (default 60 s).
func startNetStack(t *testing.T, profiles, rules string, approvalTimeout ...time.Duration) *netStack {
	t.Helper()
	egresstest.Tool(t, "curl")
	s := bustest.Start(t)
	base, err := os.MkdirTemp("/var/tmp", "moat-egress-stack-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	n := &netStack{Stack: s, ws: filepath.Join(base, "ws"), rules: filepath.Join(base, "net.rules"), net: egresstest.New(t)}
	os.MkdirAll(n.ws, 0o755)
	hello := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { fmt.Fprintf(rw, "hello from %s %s", r.Host, r.URL.Path) })
	n.srv = map[string]*egresstest.Server{}
	for _, h := range []string{"allowed.test", "ruled.test", "asked.test", "banned.test"} {
		n.srv[h] = n.net.HTTP(h, hello)
	}
	pf := filepath.Join(s.Home.Dir, "profiles.toml")
	if err := os.WriteFile(pf, []byte(profiles), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := profile.NewResolver(profile.Options{MoatHome: s.Home.Dir, ProfilesFile: pf})
	if err != nil {
		t.Fatal(err)
	}
	pd, err := profiled.Start(s.Conn(t, home.RoleProfiled), profiled.Config{Resolver: r, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pd.Stop() })
	eng := policy.New(policy.Options{})
	n.watch = &policyd.RulesWatcher{Engine: eng, Paths: []string{n.rules}, Logger: quiet}
	n.setRules(t, rules)
	timeout := 60 * time.Second
	if len(approvalTimeout) > 0 {
		timeout = approvalTimeout[0]
	}
	pol, err := policyd.Start(s.Conn(t, home.RolePolicyd), policyd.Config{Engine: eng, Logger: quiet, ApprovalTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pol.Stop() })
	sd, err := sandboxd.Start(s.Conn(t, home.RoleSandboxd), sandboxd.Config{Logger: quiet,
		Net: sandbox.NetHooks{Resolver: n.net, Dialer: n.net}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sd.Stop() })
	return n
}

// setRules writes the rules file and has policyd load it, as a reload does.
func (n *netStack) setRules(t *testing.T, rules string) {
	t.Helper()
	if err := os.WriteFile(n.rules, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := n.watch.Load(); err != nil {
		t.Fatal(err)
	}
}

// run runs script under prof through sandboxd, as `moat run` does.
func (n *netStack) run(t *testing.T, c *client.Client, req *wire.RunRequest, script string) *wire.RunResult {
	t.Helper()
	req.Workspace, req.Argv = n.ws, []string{"sh", "-c", script}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := c.Run(ctx, req, nil)
	if err != nil {
		t.Fatalf("run %q: %v", script, err)
	}
	if res.Decision == nil || res.Decision.Verdict != wire.VerdictAllow {
		t.Fatalf("run %q not allowed: %+v", script, res.Decision)
	}
	return res
}

// conns is how many connections each stand-in server saw.
func (n *netStack) conns() map[string]int64 {
	out := map[string]int64{}
	for h, s := range n.srv {
		out[h] = s.Conns.Load()
	}
	return out
}
