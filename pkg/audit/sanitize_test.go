package audit

import (
	"strconv"
	"strings"
	"testing"

	"github.com/moatsec/moat/pkg/wire"
)

func TestRedactionVectors(t *testing.T) {
	s := NewSanitizer([]byte("0123456789abcdef0123456789abcdef"), "/home/alice", "/root")
	tests := []struct {
		rule string
		in   string // must be redacted under rule
		keep string // a look-alike that must survive
	}{
		{"aws-access-key", "aws s3 ls --key AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7 is too short"},
		{"github-token", "gh auth login --with ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", "ghp_short"},
		{"github-token", "export T=github_pat_" + strings.Repeat("a1B2", 20) + "xy", "github_pat_too_short"},
		{"gitlab-token", "curl -H 'PRIVATE: glpat-abcdefghij0123456789'", "glpat- (no token)"},
		{"slack-token", "SLACK xoxb-1234567890-abcdefghij", "xox is a word"},
		{"private-key", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----", "-----BEGIN PUBLIC KEY-----"},
		{"private-key", "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA (cut)", "PRIVATE KEY material is discussed here"},
		{"jwt", "Authorization: eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "eyJ alone"},
		{"bearer", "curl -H 'Authorization: Bearer abcdef0123456789abcdef'", "the bearer of bad news"},
		{"url-credentials", "git push https://bob:hunter2@example.com/repo.git", "https://example.com/a:b@c is a path"},
		{"assignment", "DB_PASSWORD=hunter2 ./serve", "the password is wrong"},
		{"assignment", "export GITHUB_TOKEN='abc def'", "token expired: try again"},
		{"assignment", "api_key: 5f4dcc3b5aa765d61d8327deb882cf99", "monkey=banana"},
		{"assignment", "MY_SECRET=\"s3cr3t\"", "no secret here"},
		{"flag", "mysql --password hunter2 -u root", "--password-file=/etc/x is a path flag? no: -- password"},
	}
	for _, tt := range tests {
		got := s.Text(tt.in)
		if !strings.Contains(got, "[REDACTED:"+tt.rule+"]") {
			t.Errorf("%s: %q not redacted: %q", tt.rule, tt.in, got)
		}
		for _, secret := range []string{"AKIAIOSFODNN7EXAMPLE", "hunter2", "s3cr3t", "b3BlbnNzaC1rZXktdjEAAAAA", "abcdefghij0123456789", "5f4dcc3b"} {
			if strings.Contains(tt.in, secret) && strings.Contains(got, secret) {
				t.Errorf("%s: secret %q survives in %q", tt.rule, secret, got)
			}
		}
		if again := s.Text(got); again != got {
			t.Errorf("%s: sanitizing twice changed %q to %q", tt.rule, got, again)
		}
		if kept := s.Text(tt.keep); strings.Contains(kept, "REDACTED") {
			t.Errorf("%s: false positive on %q: %q", tt.rule, tt.keep, kept)
		}
	}
}

func TestHomesAndUsers(t *testing.T) {
	s := NewSanitizer([]byte("0123456789abcdef0123456789abcdef"), "/home/al", "/root")
	for in, want := range map[string]string{
		"/home/al/proj/x":       "~/proj/x",
		"cd /home/al && ls":     "cd ~ && ls",
		"/home/alice/proj":      "/home/alice/proj",
		"/root/.ssh":            "~/.ssh",
		"HOME=/home/al:PATH=/x": "HOME=~:PATH=/x",
	} {
		if got := s.Text(in); got != want {
			t.Errorf("Text(%q) = %q, want %q", in, got, want)
		}
	}
	a, b := s.UserToken("alice"), s.UserToken("alice")
	if a != b || !strings.HasPrefix(a, "user:") || strings.Contains(a, "alice") || a == s.UserToken("bob") {
		t.Fatalf("tokens %q %q", a, b)
	}
	if other := NewSanitizer([]byte("another key, another token!!")); other.UserToken("alice") == a {
		t.Fatal("the token does not depend on the key")
	}
	ev := &wire.AuditEvent{User: "alice", Argv: []string{"env", "TOKEN=abc"}, Cwd: "/home/al/p",
		Reasons: []wire.Reason{{Message: "reads /home/al/.ssh"}},
		Detail:  map[string]any{"env": map[string]any{"API_KEY": "x", "PATH": "/home/al/bin"}, "workspace": "/home/al/p", "password": "x"}}
	s.Event(ev)
	if ev.User != a || ev.Argv[1] != "TOKEN=[REDACTED:assignment]" || ev.Cwd != "~/p" || ev.Reasons[0].Message != "reads ~/.ssh" {
		t.Fatalf("event %+v", ev)
	}
	env := ev.Detail["env"].(map[string]any)
	if env["API_KEY"] != "[REDACTED:assignment]" || env["PATH"] != "~/bin" || ev.Detail["password"] != "[REDACTED:assignment]" {
		t.Fatalf("detail %+v", ev.Detail)
	}
}

// TestTextCache: a text no rule touches is remembered and comes back the
// same; a text with a secret, or a long one, is never kept; the cache is
// bounded.
func TestTextCache(t *testing.T) {
	s := NewSanitizer([]byte("0123456789abcdef0123456789abcdef"), "/home/al")
	cases := []struct{ in, want string }{
		{"/home/al/proj", "~/proj"},
		{"no rule names cat; it runs confined", "no rule names cat; it runs confined"},
		{"password=hunter2", "password=[REDACTED:assignment]"},
		{"curl -H 'Authorization: Bearer abcdefghijklmnop'", "curl -H 'Authorization: Bearer [REDACTED:bearer]'"},
	}
	for round := range 2 {
		for _, c := range cases {
			if got := s.Text(c.in); got != c.want {
				t.Fatalf("round %d: Text(%q) = %q, want %q", round, c.in, got, c.want)
			}
		}
	}
	if _, ok := s.clean.m["/home/al/proj"]; !ok {
		t.Fatal("a clean text was not remembered")
	}
	for _, secret := range []string{"password=hunter2", cases[3].in} {
		if _, ok := s.clean.m[secret]; ok {
			t.Fatalf("a text with a secret is kept: %q", secret)
		}
	}
	long := strings.Repeat("x", cacheTextBytes+1)
	s.Text(long)
	if _, ok := s.clean.m[long]; ok {
		t.Fatal("a long text is kept")
	}
	for i := range 2 * cacheTexts {
		s.Text(strconv.Itoa(i))
		if n := len(s.clean.m); n > cacheTexts {
			t.Fatalf("the cache holds %d texts, over %d", n, cacheTexts)
		}
	}
}

func BenchmarkSanitizeClean(b *testing.B) {
	s := NewSanitizer([]byte("0123456789abcdef0123456789abcdef"), "/home/al")
	ev := wire.AuditEvent{Argv: []string{"go", "test", "./..."}, Cwd: "/srv/proj", Reasons: []wire.Reason{{Rule: "safe.read-only", Message: "ls only reads"}}}
	for i := 0; i < b.N; i++ {
		e := ev
		s.Event(&e)
	}
}

// TestEventLeavesCallersDataAlone: a daemon hands the publisher the very
// slices and maps it runs (argv, env, reasons, details); sanitizing must
// rewrite copies, never them.
func TestEventLeavesCallersDataAlone(t *testing.T) {
	s := NewSanitizer([]byte("0123456789abcdef0123456789abcdef"), "/root")
	argv := []string{"python3", "argv.py", "/root/x", "password=hunter2", "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"}
	env := map[string]string{"API_TOKEN": "t0k", "HOME": "/root"}
	nested := map[string]any{"PATH": "/root/bin"}
	reasons := []wire.Reason{{Rule: "r", Message: "reads /root/.ssh"}}
	detail := map[string]any{"env": env, "nested": nested, "cwd": "/root/p", "args": []string{"/root/a"}}
	want := strings.Join(argv, "\x00")
	ev := &wire.AuditEvent{Argv: argv, Reasons: reasons, Detail: detail}
	s.Event(ev)
	if got := strings.Join(argv, "\x00"); got != want {
		t.Fatalf("the caller's argv was rewritten: %q", got)
	}
	if env["API_TOKEN"] != "t0k" || env["HOME"] != "/root" || nested["PATH"] != "/root/bin" {
		t.Fatalf("the caller's env was rewritten: %v %v", env, nested)
	}
	if reasons[0].Message != "reads /root/.ssh" || detail["cwd"] != "/root/p" || detail["args"].([]string)[0] != "/root/a" {
		t.Fatalf("the caller's reasons or details were rewritten: %v %v", reasons, detail)
	}
	if ev.Argv[2] != "~/x" || !strings.Contains(ev.Argv[3], "REDACTED") || ev.Reasons[0].Message != "reads ~/.ssh" || ev.Detail["cwd"] != "~/p" {
		t.Fatalf("the event itself was not sanitized: %+v", ev)
	}
}
