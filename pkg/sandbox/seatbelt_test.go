package sandbox

import (
	"strings"
	"testing"

	"github.com/moatsec/moat/pkg/wire"
)

func TestSeatbelt(t *testing.T) {
	p := &wire.Profile{Name: "workspace-write",
		FS: wire.FS{Write: []string{"/Users/a/proj"}, ReadDeny: []string{"/Users/a/.ssh", `/Users/a/we"ird`},
			WriteDeny: []string{"/Users/a/proj/.git/hooks"}},
		Net: wire.Net{Mode: wire.NetNone}}
	got := Seatbelt(p)
	for _, want := range []string{
		"(version 1)\n(deny default)\n",
		"(allow file-read*)",
		`(subpath "/Users/a/proj")`,
		`(subpath "/Users/a/we\"ird")`,
		"(deny network*)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("profile lacks %q:\n%s", want, got)
		}
	}
	// Later rules win in SBPL: the denials come after what they narrow.
	allowWrite := strings.Index(got, "(allow file-write*")
	denyWrite := strings.Index(got, "(deny file-write*\n    (subpath \"/Users/a/proj/.git/hooks\")")
	denyRead := strings.Index(got, "(deny file-read* file-write*")
	if allowWrite < 0 || denyWrite < allowWrite || denyRead < denyWrite {
		t.Errorf("rule order wrong (allow %d, deny write %d, deny read %d):\n%s", allowWrite, denyWrite, denyRead, got)
	}
	p.Net = wire.Net{Mode: wire.NetAllowlist, Allow: []string{"proxy.golang.org:443", "example.org:8443", "x.org"}}
	if got := Seatbelt(p); !strings.Contains(got, `(remote tcp "*:443")`) || !strings.Contains(got, `(remote tcp "*:8443")`) || strings.Count(got, "*:443") != 1 {
		t.Errorf("allowlist:\n%s", got)
	}
	p.Net = wire.Net{Mode: wire.NetFull}
	if got := Seatbelt(p); !strings.Contains(got, "(allow network*)") {
		t.Errorf("full network:\n%s", got)
	}
}

func TestEnviron(t *testing.T) {
	p := &wire.Profile{Env: wire.Env{Pass: []string{"PATH", "LANG"}, Set: map[string]string{"TMPDIR": "/tmp", "MOAT_X": "no"}}}
	env := Environ(p, map[string]string{"FOO": "bar", "GITHUB_TOKEN": "s", "AWS_SECRET_ACCESS_KEY": "s", "MOAT_BUS": "s",
		"NATS_URL": "s", "OPENAI_API_KEY": "s", "DB_PASSWORD": "s", "SSH_AUTH_SOCK": "/x", "bad name": "x", "NUL": "a\x00b"}, "/home/u", "u")
	joined := strings.Join(env, "\n")
	for _, want := range []string{"FOO=bar", "TMPDIR=/tmp", "HOME=/home/u", "USER=u", "PATH=" + DefaultPath} {
		if !strings.Contains(joined, want) {
			t.Errorf("env lacks %s:\n%s", want, joined)
		}
	}
	for _, bad := range []string{"TOKEN", "AWS_", "MOAT_", "NATS_", "API_KEY", "PASSWORD", "SSH_AUTH", "bad name", "NUL="} {
		if strings.Contains(joined, bad) {
			t.Errorf("env keeps %s:\n%s", bad, joined)
		}
	}
}

func TestCapped(t *testing.T) {
	var live strings.Builder
	c := &capped{max: 5, live: &live}
	c.Write([]byte("abc"))
	n, err := c.Write([]byte("defgh"))
	if n != 5 || err != nil {
		t.Fatalf("write past the cap: %d %v (a writer must never stall)", n, err)
	}
	got, trunc := c.result()
	if string(got) != "abcde" || !trunc || live.String() != "abcde" {
		t.Fatalf("got %q truncated %v live %q", got, trunc, live.String())
	}
}
