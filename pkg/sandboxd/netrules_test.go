//go:build linux

package sandboxd_test

import (
	"strings"
	"testing"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
)

const webProfile = `[profiles.web]
extends = "workspace-write"
net = "allowlist"
net_allow = ["allowed.test"]
`

// TestNetworkRulesFeedTheProxy: a rules file's network_rule allow makes a
// host the profile does not list reachable through the run's proxy, a deny
// blocks a host the profile allows, and a reload changes both for the next
// run. The hosts hide in variables, so policyd cannot judge them from the
// command line: the proxy alone decides. Approval never: nobody is asked.
func TestNetworkRulesFeedTheProxy(t *testing.T) {
	n := startNetStack(t, webProfile, `network_rule(host = "ruled.test", protocol = "http", decision = "allow")
network_rule(host = "allowed.test", protocol = "https", decision = "deny", justification = "not from here")
`)
	c := n.Client(t, home.RoleClient)
	script := `R=ruled.test A=allowed.test; curl -sS "http://$R/a"; echo; curl -sS -o /dev/null -w '%{http_code}' "http://$A/b"`

	res := n.run(t, c, &wire.RunRequest{Profile: "web", Approval: wire.ApprovalNever}, script)
	if string(res.Stdout) != "hello from ruled.test /a\n403" {
		t.Fatalf("stdout %q, stderr %q", res.Stdout, res.Stderr)
	}
	if got := n.conns(); got["ruled.test"] != 1 || got["allowed.test"] != 0 {
		t.Fatalf("server connections %v", got)
	}
	if len(res.NetDenied) != 1 || res.NetDenied[0].Dest != "allowed.test:80" || res.NetDenied[0].Rule != "net.denied" ||
		!strings.Contains(res.NetDenied[0].Reason, n.rules+":2") || !strings.Contains(res.NetDenied[0].Fix, "network_rule at "+n.rules+":2") {
		t.Fatalf("net_denied %+v", res.NetDenied)
	}

	// The next run follows the reloaded file: the allow and the deny are gone.
	n.setRules(t, `prefix_rule(pattern = ["true"], decision = "allow")`+"\n")
	before := n.conns()
	res = n.run(t, c, &wire.RunRequest{Profile: "web", Approval: wire.ApprovalNever}, script)
	after := n.conns()
	if after["ruled.test"] != before["ruled.test"] || after["allowed.test"] != before["allowed.test"]+1 {
		t.Fatalf("after reload: connections %v then %v; stdout %q stderr %q", before, after, res.Stdout, res.Stderr)
	}
	if !strings.HasSuffix(string(res.Stdout), "200") || len(res.NetDenied) != 1 || res.NetDenied[0].Dest != "ruled.test:80" ||
		res.NetDenied[0].Rule != "net.not-allowed" {
		t.Fatalf("after reload: stdout %q, net_denied %+v", res.Stdout, res.NetDenied)
	}
}
