package wire

import (
	"testing"
	"time"
)

func TestParseGrant(t *testing.T) {
	tests := []struct {
		in   string
		want GrantSpec
		ok   bool
	}{
		{"", GrantSpec{Kind: GrantOnce}, true},
		{"once", GrantSpec{Kind: GrantOnce}, true},
		{"session", GrantSpec{Kind: GrantSession}, true},
		{"rule", GrantSpec{Kind: GrantRule}, true},
		{"5m", GrantSpec{Kind: "duration", Duration: 5 * time.Minute}, true},
		{"1s", GrantSpec{Kind: "duration", Duration: time.Second}, true},
		{"3uses", GrantSpec{Kind: "uses", Uses: 3}, true},
		{"1use", GrantSpec{Kind: "uses", Uses: 1}, true},
		{"10000uses", GrantSpec{Kind: "uses", Uses: 10000}, true},
		{"10001uses", GrantSpec{}, false},
		{"0uses", GrantSpec{}, false},
		{"-1uses", GrantSpec{}, false},
		{"uses", GrantSpec{}, false},
		{"500ms", GrantSpec{}, false},
		{"-5m", GrantSpec{}, false},
		{"721h", GrantSpec{}, false},
		{"forever", GrantSpec{}, false},
		{"Session", GrantSpec{}, false},
	}
	for _, tt := range tests {
		got, err := ParseGrant(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseGrant(%q) = %+v, %v; want %+v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && CodeOf(err) != CodeBadRequest {
			t.Errorf("ParseGrant(%q): %v, want a 400", tt.in, err)
		}
	}
}

func TestGrantCovers(t *testing.T) {
	now := time.Now()
	exact := Grant{Workspace: "/w", Profile: "p", Argv: []string{"git", "push"}}
	prefix := Grant{Workspace: "/w", Profile: "p", Argv: []string{"git", "push"}, Prefix: true}
	session := Grant{Workspace: "/w", Profile: "p", Argv: []string{"git"}, Prefix: true, SessionID: "s1"}
	expired := Grant{Workspace: "/w", Profile: "p", Argv: []string{"git"}, Prefix: true, ExpiresAt: now}
	tests := []struct {
		g              Grant
		ws, prof, sess string
		argv           []string
		want           bool
	}{
		{exact, "/w", "p", "", []string{"git", "push"}, true},
		{exact, "/w", "p", "", []string{"git", "push", "-f"}, false},
		{exact, "/w", "p", "", []string{"git"}, false},
		{exact, "/w2", "p", "", []string{"git", "push"}, false},
		{exact, "/w", "p2", "", []string{"git", "push"}, false},
		{prefix, "/w", "p", "", []string{"git", "push", "origin"}, true},
		{prefix, "/w", "p", "", []string{"git", "pull"}, false},
		{prefix, "/w", "p", "", []string{"git"}, false},
		{session, "/w", "p", "s1", []string{"git", "status"}, true},
		{session, "/w", "p", "s2", []string{"git", "status"}, false},
		{session, "/w", "p", "", []string{"git", "status"}, false},
		{expired, "/w", "p", "", []string{"git"}, false},
	}
	for i, tt := range tests {
		if got := tt.g.Covers(tt.ws, tt.prof, tt.sess, tt.argv, now); got != tt.want {
			t.Errorf("%d: %+v covers %s %s %s %q = %v, want %v", i, tt.g, tt.ws, tt.prof, tt.sess, tt.argv, got, tt.want)
		}
	}
}

func TestValidGrantPrefix(t *testing.T) {
	argv := []string{"git", "push", "origin"}
	for _, p := range [][]string{{"git"}, {"git", "push"}, argv} {
		if err := ValidGrantPrefix(p, argv); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
	for _, p := range [][]string{nil, {"push"}, {"git", "pull"}, append(argv, "x")} {
		if err := ValidGrantPrefix(p, argv); CodeOf(err) != CodeBadRequest {
			t.Errorf("%q: %v, want 400", p, err)
		}
	}
}

func FuzzParseGrant(f *testing.F) {
	for _, s := range []string{"", "once", "5m", "3uses", "1use", "rule", "99999999999999999999uses", "1e9h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		g, err := ParseGrant(s)
		if err != nil {
			return
		}
		switch g.Kind {
		case GrantOnce, GrantSession, GrantRule:
		case "duration":
			if g.Duration < time.Second || g.Duration > GrantMaxDuration {
				t.Fatalf("%q: %v", s, g.Duration)
			}
		case "uses":
			if g.Uses < 1 || g.Uses > GrantMaxUses {
				t.Fatalf("%q: %d uses", s, g.Uses)
			}
		default:
			t.Fatalf("%q: kind %q", s, g.Kind)
		}
	})
}
