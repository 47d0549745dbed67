package egress

import (
	"context"
	"net/netip"
	"strings"
	"testing"
)

func TestParseRule(t *testing.T) {
	for _, tc := range []struct {
		in    string
		allow bool
		want  Rule
		bad   bool
	}{
		{in: "Proxy.Golang.org.", want: Rule{Host: "proxy.golang.org"}},
		{in: "*.github.com", want: Rule{Host: "github.com", Wild: true}},
		{in: "github.com:22", want: Rule{Host: "github.com", Port: 22}},
		{in: "*.example.com:8443", want: Rule{Host: "example.com", Wild: true, Port: 8443}},
		{in: "203.0.113.7", want: Rule{Prefix: netip.MustParsePrefix("203.0.113.7/32")}},
		{in: "203.0.113.7:443", want: Rule{Prefix: netip.MustParsePrefix("203.0.113.7/32"), Port: 443}},
		{in: "10.1.2.3/8:5432", allow: true, want: Rule{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Port: 5432}},
		{in: "[2001:db8::1]:443", want: Rule{Prefix: netip.MustParsePrefix("2001:db8::1/128"), Port: 443}},
		{in: "[fd00::/8]:5432", allow: true, want: Rule{Prefix: netip.MustParsePrefix("fd00::/8"), Port: 5432}},
		{in: "[fd00::/8]", want: Rule{Prefix: netip.MustParsePrefix("fd00::/8")}}, // deny: every port
		{in: "10.0.0.0/8", allow: true, bad: true},                                // a range names its port
		{in: "", bad: true},
		{in: "*", bad: true},
		{in: "*.", bad: true},
		{in: "a..b", bad: true},
		{in: "host:0", bad: true},
		{in: "host:65536", bad: true},
		{in: "host:080", bad: true},
		{in: "host:", bad: true},
		{in: "2001:db8::1", bad: true}, // v6 needs brackets
		{in: "[2001:db8::1", bad: true},
		{in: "[::1]x", bad: true},
		{in: "exa mple.com", bad: true},
		{in: "bücher.de", bad: true}, // punycode only
		{in: "http://example.com", bad: true},
		{in: "example.com/path", bad: true},
		{in: "[fe80::1%eth0]:443", bad: true},
	} {
		got, err := ParseRule(tc.in, tc.allow)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseRule(%q) = %+v, want an error", tc.in, got)
			}
			continue
		}
		tc.want.Text = tc.in
		if err != nil || got != tc.want {
			t.Errorf("ParseRule(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestClassify(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1": "loopback", "127.9.9.9": "loopback", "::1": "loopback", "::ffff:127.0.0.1": "loopback",
		"10.0.0.1": "private", "172.16.0.1": "private", "172.31.255.255": "private", "192.168.1.1": "private",
		"100.64.0.1": "cgnat", "100.100.100.200": "cgnat", "169.254.169.254": "link-local", "fe80::1": "link-local",
		"fd00::1": "ula", "fc00::1": "ula", "fd00:ec2::254": "ula", "224.0.0.1": "multicast", "ff02::1": "multicast",
		"0.0.0.0": "unspecified", "::": "unspecified", "255.255.255.255": "reserved", "240.0.0.1": "reserved",
		"64:ff9b::a9fe:a9fe": "link-local", "64:ff9b::7f00:1": "loopback", "2002:7f00:1::": "loopback",
		"2002:a00:1::": "private", "2001::1": "tunnel", "::127.0.0.1": "reserved", "192.0.0.192": "reserved",
		"93.184.215.14": "", "1.1.1.1": "", "2606:4700::1111": "", "172.32.0.1": "", "64:ff9b::101:101": "",
		"2002:101:101::": "",
	} {
		if got, _ := Classify(netip.MustParseAddr(in)); got != want {
			t.Errorf("Classify(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestAdmit(t *testing.T) {
	p, err := NewPolicy("p", false, []string{"example.com", "*.pkg.dev", "git.example.org:22", "93.184.215.77:8080",
		"10.0.0.0/8:5432", "127.0.0.1/32:8080", "0.0.0.0/0:9000", "[fd00::/8]:5432"},
		[]string{"bad.pkg.dev", "*.evil.pkg.dev:443", "10.9.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		host string
		port int
		rule string
	}{
		{"example.com", 443, RuleAllowed},
		{"EXAMPLE.com.", 80, RuleAllowed},
		{"example.com", 22, RulePort},
		{"www.example.com", 443, RuleNotAllowed},
		{"a.pkg.dev", 443, RuleAllowed},
		{"a.b.pkg.dev", 80, RuleAllowed},
		{"pkg.dev", 443, RuleNotAllowed}, // *.domain is below the domain only
		{"xpkg.dev", 443, RuleNotAllowed},
		{"bad.pkg.dev", 443, RuleDenied},
		{"bad.pkg.dev", 80, RuleDenied}, // a deny entry without a port takes every port
		{"x.evil.pkg.dev", 443, RuleDenied},
		{"x.evil.pkg.dev", 80, RuleAllowed},
		{"git.example.org", 22, RuleAllowed},
		{"git.example.org", 443, RulePort},
		{"93.184.215.77", 8080, RuleAllowed},
		{"93.184.215.77", 443, RuleNotAllowed},
		{"203.0.113.7", 443, RuleAddress}, // documentation range: never a destination
		{"10.1.2.3", 5432, RuleAllowed},
		{"10.9.1.1", 5432, RuleDenied},
		{"10.1.2.3", 5433, RuleAddress},
		{"127.0.0.1", 8080, RuleAllowed},
		{"127.0.0.2", 8080, RuleAddress},
		{"127.0.0.1", 9000, RuleAddress}, // 0.0.0.0/0 is wider than loopback
		{"93.184.215.14", 9000, RuleAllowed},
		{"fd12::1", 5432, RuleAllowed},
		{"::1", 5432, RuleAddress},
		{"169.254.169.254", 80, RuleAddress},
		{"not a name", 80, RuleProtocol},
	} {
		v := p.Admit(tc.host, tc.port)
		if v.Rule != tc.rule || v.OK != (tc.rule == RuleAllowed) {
			t.Errorf("Admit(%s, %d) = %+v, want %s", tc.host, tc.port, v, tc.rule)
		}
		if !v.OK && v.Reason == "" {
			t.Errorf("Admit(%s, %d): a refusal without a reason", tc.host, tc.port)
		}
	}
	full, _ := NewPolicy("full", true, nil, []string{"blocked.example"})
	for host, ok := range map[string]bool{"anything.example": true, "blocked.example": false, "93.184.215.14": true, "127.0.0.1": false} {
		if got := full.Admit(host, 443).OK; got != ok {
			t.Errorf("full network Admit(%s) = %v", host, got)
		}
	}
	none, _ := NewPolicy("none", false, nil, nil)
	if v := none.Admit("example.com", 443); v.OK || v.Rule != RuleNoEgress {
		t.Errorf("empty allow list: %+v", v)
	}
}

func TestNamedAndReachable(t *testing.T) {
	p, _ := NewPolicy("p", false, []string{"example.com", "*.pkg.dev", "db.internal:5432", "10.0.0.0/8:5432"}, []string{"bad.pkg.dev", "x.pkg.dev:443"})
	for name, want := range map[string]bool{"example.com": true, "a.pkg.dev": true, "bad.pkg.dev": false, "x.pkg.dev": true,
		"db.internal": true, "other.com": false, "": false, "a b": false} {
		if got := p.Named(name); got != want {
			t.Errorf("Named(%q) = %v", name, got)
		}
	}
	for a, want := range map[string]bool{"93.184.215.14": true, "10.1.1.1": true, "127.0.0.1": false, "169.254.169.254": false} {
		if got := p.Reachable(netip.MustParseAddr(a)); got != want {
			t.Errorf("Reachable(%s) = %v", a, got)
		}
	}
}

func FuzzParseRule(f *testing.F) {
	for _, s := range []string{"example.com", "*.a.b:22", "[::1]:80", "10.0.0.0/8:5432", "[fd00::/8]", "a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRule(s, true)
		if err != nil {
			return
		}
		if r.Host == "" && !r.Prefix.IsValid() {
			t.Fatalf("%q parsed to an empty rule", s)
		}
		if r.Port < 0 || r.Port > 65535 {
			t.Fatalf("%q: port %d", s, r.Port)
		}
	})
}

// FuzzAnswer feeds the DNS responder arbitrary packets: it never panics,
// and never asks upstream about a name the policy does not admit.
func FuzzAnswer(f *testing.F) {
	f.Add([]byte{0, 42, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0, 0, 1, 0, 1})
	f.Add([]byte{0, 42, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 5, 'o', 't', 'h', 'e', 'r', 0, 0, 16, 0, 1})
	pol, _ := NewPolicy("p", false, []string{"example.com"}, nil)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		r := &askedResolver{}
		p := New(Config{Policy: pol, Resolver: r, Dialer: nil})
		p.answer(t.Context(), pkt)
		for _, name := range r.asked {
			if !pol.Named(name) {
				t.Fatalf("asked upstream about %q", name)
			}
		}
	})
}

type askedResolver struct{ asked []string }

func (r *askedResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	r.asked = append(r.asked, host)
	return []netip.Addr{netip.MustParseAddr("93.184.215.1"), netip.MustParseAddr("127.0.0.1")}, nil
}

// TestPolicyNetworkRules: a rules file's entries join the profile's lists,
// deny first, then prompt (every port), then allow; each reason names the
// network_rule's file and line.
func TestPolicyNetworkRules(t *testing.T) {
	p, err := NewPolicy("web", false, []string{"allowed.test", "both.test"}, []string{"bad.test"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct{ decision, entry, source string }{
		{"allow", "ruled.test:443", "r:1"}, {"deny", "both.test", "r:2"}, {"prompt", "ask.test", "r:3"}, {"prompt", "allowed.test", "r:4"},
		{"deny", "[2001:db8::2]", "r:5"},
	} {
		if err := p.Add(r.decision, r.entry, r.source); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range []struct{ decision, entry string }{{"allow", "*"}, {"forbidden", "x.test"}, {"allow", "10.0.0.0/8"}} {
		if err := p.Add(bad.decision, bad.entry, "r:9"); err == nil {
			t.Errorf("Add(%q, %q) took it", bad.decision, bad.entry)
		}
	}
	for _, tc := range []struct {
		host   string
		port   int
		rule   string
		source string
	}{
		{"ruled.test", 443, RuleAllowed, ""},
		{"ruled.test", 80, RulePort, ""},
		{"both.test", 443, RuleDenied, "r:2"}, // a rules-file deny beats the profile's allow
		{"ask.test", 8080, RulePrompt, "r:3"},
		{"allowed.test", 443, RulePrompt, "r:4"}, // prompt beats allow
		{"bad.test", 443, RuleDenied, ""},
		{"2001:db8::2", 443, RuleDenied, "r:5"},
	} {
		v := p.Admit(tc.host, tc.port)
		if v.Rule != tc.rule || (tc.source != "" && !strings.Contains(v.Reason, "network_rule at "+tc.source)) {
			t.Errorf("Admit(%s, %d) = %+v, want %s from %q", tc.host, tc.port, v, tc.rule, tc.source)
		}
		if tc.source != "" && !strings.Contains(p.Fix(tc.host, tc.port, v), tc.source) {
			t.Errorf("Fix for %s: %q names no %s", tc.host, p.Fix(tc.host, tc.port, v), tc.source)
		}
	}
}
