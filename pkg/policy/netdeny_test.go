package policy

import (
	"testing"

	"github.com/moatsec/moat/pkg/wire"
)

// TestNetListsAsTheProxyJudges: the policy reads net_allow and net_deny as
// the egress proxy does — ranges with ports, bare hosts on 443 and 80, deny
// winning, under full network too.
func TestNetListsAsTheProxyJudges(t *testing.T) {
	w := newWorld(t)
	e := New(Options{})
	lan := *w.profiles["proxied"]
	lan.Net = wire.Net{Mode: wire.NetAllowlist, Allow: []string{"10.0.0.0/8:5432", "git.example.org"}, Deny: []string{"bad.example.org"}}
	full := *w.profiles["net-readonly"]
	full.Net = wire.Net{Mode: wire.NetFull, Deny: []string{"pastebin.com", "*.evil.example"}}
	for _, tc := range []struct {
		p    *wire.Profile
		argv []string
		want string
	}{
		{&lan, argv("curl http://10.1.2.3:5432/"), wire.VerdictAllow},
		{&lan, argv("curl http://10.1.2.3:5433/"), wire.VerdictDeny},
		{&lan, argv("curl https://git.example.org/x"), wire.VerdictAllow},
		{&lan, argv("curl http://git.example.org:8080/x"), wire.VerdictDeny},
		{&full, argv("curl https://pastebin.com/raw/x"), wire.VerdictDeny},
		{&full, argv("curl https://a.evil.example/"), wire.VerdictDeny},
		{&full, argv("curl https://example.com/"), wire.VerdictAllow},
		{&full, argv("curl http://127.0.0.1:3000/"), wire.VerdictAllow}, // the sandbox's own loopback
	} {
		d, err := e.Decide(&Input{Argv: tc.argv, Profile: tc.p})
		if err != nil || d.Verdict != tc.want {
			t.Errorf("%q under %s = %s, want %s: %v %v", tc.argv, tc.p.Net.Mode, d.Verdict, tc.want, d.Reasons, err)
		}
	}
}
