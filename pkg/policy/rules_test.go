package policy

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/wire"
)

// codexRules is written the way Codex's own docs and TUI write default.rules.
const codexRules = `# Prompt before running commands with the prefix ` + "`gh pr view`" + `.
prefix_rule(
    # The prefix to match.
    pattern = ["gh", "pr", "view"],
    decision = "prompt",
    justification = "Viewing PRs is allowed with approval",
    match = [
        "gh pr view 7888",
        "gh pr view --repo openai/codex",
        "gh pr view 7888 --json title,body,comments",
    ],
    not_match = [
        # Does not match because the pattern must be an exact prefix.
        "gh pr --repo openai/codex view 7888",
    ],
)
prefix_rule(pattern = ["git", ["push", "fetch"]], decision = "prompt", match = [["git", "push", "origin", "main"]], not_match = [["git", "status"]])
prefix_rule(pattern=["make", "deploy"], decision="forbidden", justification="deploys are done by CI, never by an agent", match=["make deploy prod"])
prefix_rule(pattern=["npm", "test"], decision="allow")
prefix_rule(pattern=["terraform"], decision="prompt")
prefix_rule(pattern=["rm"], decision="forbidden", justification="use trash-cli")
`

func writeRules(t testing.TB, dir, name, src string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCodexRulesFile(t *testing.T) {
	w := newWorld(t)
	dir := t.TempDir()
	path := writeRules(t, dir, "default.rules", codexRules)
	rs, err := LoadRules(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rs.Len() != 6 || len(rs.Files()) != 1 {
		t.Fatalf("loaded %d rules from %v", rs.Len(), rs.Files())
	}
	e := New(Options{Unknown: wire.VerdictPrompt})
	e.SetRules(rs)
	tests := []struct {
		argv    []string
		prof    string
		want    string
		source  string
		message string
	}{
		{argv("gh pr view 7888"), "workspace-net", wire.VerdictPrompt, path + ":2", "Viewing PRs"},
		{argv("git push origin main"), "workspace-net", wire.VerdictPrompt, path + ":17", "prefix_rule"},
		{argv("git push origin main"), "workspace-write", wire.VerdictDeny, "", ""}, // built-in network deny is stricter
		{argv("make deploy prod"), "workspace-write", wire.VerdictDeny, path + ":18", "deploys are done by CI"},
		{argv("/usr/bin/make deploy"), "workspace-write", wire.VerdictDeny, path + ":18", ""},
		{sh("ls && make deploy"), "workspace-write", wire.VerdictDeny, path + ":18", ""},
		{argv("make build"), "workspace-write", wire.VerdictPrompt, "", ""}, // unknown, and policyd asks
		{argv("npm test"), "workspace-write", wire.VerdictAllow, path + ":19", ""},
		{argv("terraform plan"), "workspace-net", wire.VerdictPrompt, path + ":20", ""},
		{sh("$RM -rf x"), "workspace-write", wire.VerdictPrompt, "", ""},
		{argv("rm build"), "workspace-write", wire.VerdictDeny, path + ":21", "trash-cli"},
	}
	for _, tt := range tests {
		d := w.decide(t, e, tt.prof, tt.argv)
		if d.Verdict != tt.want {
			t.Errorf("%q = %s, want %s: %v", tt.argv, d.Verdict, tt.want, d.Reasons)
			continue
		}
		if tt.source == "" {
			continue
		}
		found := false
		for _, r := range d.Reasons {
			if r.Rule == "file.prefix-rule" && r.Source == tt.source && strings.Contains(r.Message, tt.message) {
				found = true
			}
		}
		if !found {
			t.Errorf("%q: no reason from %s mentioning %q: %v", tt.argv, tt.source, tt.message, d.Reasons)
		}
	}
}

func TestRulesLoadErrors(t *testing.T) {
	tests := []struct {
		src  string
		line int
		msg  string
	}{
		{"prefix_rule(pattern=[\"git\"], match=[\"ls\"])\n", 1, "does not match pattern"},
		{"\nprefix_rule(pattern=[\"git\", \"push\"], not_match=[\"git push x\"])\n", 2, "not_match example"},
		{"prefix_rule(pattern=[])\n", 1, "pattern cannot be empty"},
		{"prefix_rule(decision=\"allow\")\n", 1, "missing argument for pattern"},
		{"prefix_rule(pattern=[\"x\"], decision=\"maybe\")\n", 1, "decision"},
		{"prefix_rule(pattern=[\"x\"], colour=\"red\")\n", 1, "unexpected keyword argument"},
		{"prefix_rule([\"x\"], \"prompt\", pattern=[\"y\"])\n", 1, "got multiple values"},
		{"prefix_rule(pattern=[1])\n", 1, "pattern[0]"},
		{"\n\nprefix_rule(pattern=[\"x\"]\n", 4, ""},
		{"load(\"other.star\", \"x\")\n", 1, "load"},
		{"host_executable(name=\"git\")\n", 1, "missing argument for paths"},
		{"prefix_rule(pattern=[\"x\"], match=[\"unterminated 'quote\"])\n", 1, "invalid shell syntax"},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		path := writeRules(t, dir, "bad.rules", tt.src)
		_, err := LoadRules(dir)
		want := fmt.Sprintf("%s:%d", path, tt.line)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%q: err = %v, want one naming %s and %q", tt.src, err, want, tt.msg)
		}
	}
}

// TestHostileRulesFileIsBounded: a rules file that would loop for ever is
// stopped by the step limit and reported, quickly.
func TestHostileRulesFileIsBounded(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, "loop.rules", "def spin():\n    for i in range(1000000000):\n        pass\nspin()\n")
	start := time.Now()
	_, err := LoadRules(dir)
	if err == nil || !strings.Contains(err.Error(), "too many steps") {
		t.Fatalf("err = %v, want the step limit", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("stopping took %v", d)
	}
}

func TestRulesDirectory(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, "b.rules", `prefix_rule(pattern=["b"])`)
	writeRules(t, dir, "a.rules", `prefix_rule(pattern=["a"], decision="prompt")`)
	writeRules(t, dir, "notes.txt", `this is not starlark`)
	extra := writeRules(t, t.TempDir(), "x.rules", `prefix_rule(pattern=["x"], decision="forbidden")`)
	rs, err := LoadRules(dir, extra, filepath.Join(dir, "missing"))
	if err != nil {
		t.Fatal(err)
	}
	if rs.Len() != 3 || len(rs.Files()) != 3 || !strings.HasSuffix(rs.Files()[0], "a.rules") {
		t.Fatalf("files %v, %d rules", rs.Files(), rs.Len())
	}
}

// FuzzRules: any file content is a ruleset or a load error, never a panic.
func FuzzRules(f *testing.F) {
	f.Add(codexRules)
	f.Add("prefix_rule(pattern=[\"a\", [\"b\", \"c\"]], decision=\"prompt\", match=[\"a b\"], not_match=[[\"a\"]])")
	f.Add("x = [prefix_rule(pattern=[str(i)]) for i in range(10)]")
	f.Add("prefix_rule(pattern=[\"\\x00\"])")
	f.Add("for t in [\"a\", \"b\"]:\n    prefix_rule([t], \"prompt\", justification=f\"{t} is {t!r}\")\n")
	f.Add("def deny(*w: str, why: str = \"x\") -> None:\n    prefix_rule(list(w), \"forbidden\", justification = why)\nn: int = 1\ndeny(\"a\", why = f\"{n}\")\n")
	f.Add("def w(f):\n    return f\n@w\ndef r():\n    prefix_rule([\"x\"])\n\nr()\n")
	f.Add("network_rule(host=\"[::1]:80\", protocol=\"https\", decision=\"deny\")\nhost_executable(\"git\", [\"/usr/bin/git\"])")
	f.Fuzz(func(t *testing.T, src string) {
		rs := emptyRuleset()
		if err := rs.parseFile("fuzz.rules", []byte(src)); err != nil {
			if !strings.Contains(err.Error(), "fuzz.rules") {
				t.Fatalf("load error does not name the file: %v", err)
			}
			return
		}
		for _, rules := range rs.byFirst {
			for _, r := range rules {
				if len(r.pattern) == 0 || r.source == "" {
					t.Fatalf("rule without pattern or source: %+v", r)
				}
			}
		}
	})
}
