package gitconfig

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestParseAgreesWithGit: every sample reads as `git config --list` reads it.
func TestParseAgreesWithGit(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is needed: apt-get install git")
	}
	samples := []string{
		"[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n",
		"[remote \"origin\"]\n\turl = /srv/x.git\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n[branch \"main\"]\n\tremote = origin\n",
		"[Core]\nFSMonitor = \"touch /tmp/x\" ; comment\n",
		"[core] fsmonitor = a\\\n b   c   # trailing\n",
		"[alias]\n\tst = \"!f() { echo \\\"hi\\\"; }; f\"\n",
		"[section.Sub]\nkey\nother=\n",
		"\xef\xbb\xbf[a \"b\\\"c\"]\n  k = v\\tw\n",
		"[x]\nk = \" lead\"  trail  \n",
	}
	dir := t.TempDir()
	for i, s := range samples {
		f := filepath.Join(dir, "c")
		os.WriteFile(f, []byte(s), 0o644)
		out, err := exec.Command("git", "config", "--file", f, "--list", "-z").Output()
		if err != nil {
			t.Fatalf("sample %d: git: %v", i, err)
		}
		var want []string
		for _, kv := range strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00") {
			k, v, ok := strings.Cut(kv, "\n")
			if !ok {
				v = "<novalue>"
			}
			want = append(want, k+"="+v)
		}
		entries, err := Parse([]byte(s))
		if err != nil {
			t.Fatalf("sample %d: %v", i, err)
		}
		var got []string
		for _, e := range entries {
			v := e.Value
			if e.NoValue {
				v = "<novalue>"
			}
			got = append(got, e.Key()+"="+v)
		}
		if !slices.Equal(got, want) {
			t.Errorf("sample %d %q:\n got %q\nwant %q", i, s, got, want)
		}
	}
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		config string
		risky  bool
	}{
		{"[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\tlogallrefupdates = true\n", false},
		{"[remote \"origin\"]\n\turl = https://example.com/x\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n[branch \"main\"]\n\tremote = origin\n\tmerge = refs/heads/main\n", false},
		{"[submodule \"lib\"]\n\turl = ../lib\n\tactive = true\n[core]\n\tworktree = ../../../lib\n", false},
		{"[core]\n\tfsmonitor = true\n", false},
		{"[core]\n\tfsmonitor = \"touch /tmp/pwned\"\n", true},
		{"[core]\n\thooksPath = /tmp/h\n", true},
		{"[core]\n\tsshCommand = sh -c x\n", true},
		{"[filter \"lfs\"]\n\tsmudge = git-lfs smudge %f\n", true},
		{"[diff \"x\"]\n\ttextconv = cat\n", true},
		{"[merge \"x\"]\n\tdriver = sh\n", true},
		{"[mergetool \"x\"]\n\tcmd = sh\n", true},
		{"[alias]\n\tco = checkout\n", false},
		{"[alias]\n\tx = !sh -c id\n", true},
		{"[include]\n\tpath = ../evil\n", true},
		{"[includeIf \"gitdir:/\"]\n\tpath = ../evil\n", true},
		{"[credential]\n\thelper = !sh\n", true},
		{"[remote \"o\"]\n\tuploadpack = sh -c x\n", true},
		{"[url \"ext::sh -c x\"]\n\tinsteadOf = https://\n", true},
		{"[remote \"o\"]\n\turl = ext::sh -c x\n", true},
		{"[pager]\n\tlog = sh -c x\n", true},
		{"[core]\n\tfsmonitor = \"unterminated\n", true},
		{"[core\n", true},
	} {
		if got := len(Check([]byte(tc.config))) > 0; got != tc.risky {
			t.Errorf("%q: risky = %v, want %v (%v)", tc.config, got, tc.risky, Check([]byte(tc.config)))
		}
	}
}
