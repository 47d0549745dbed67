//go:build linux

package e2e

import (
	"debug/elf"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRulesThroughMoat: moat rules, the real binary, answers as moat-rules
// does (moat replaces itself with it): the same output, the same exit
// codes; and a moat with neither moat-rules nor moat-mcp beside it says
// what to install, exit 1, even with both on PATH.
func TestRulesThroughMoat(t *testing.T) {
	e := newEnv(t)
	file := filepath.Join(e.ws, "default.rules")
	os.WriteFile(file, []byte("prefix_rule([\"git\", \"push\"], \"prompt\")\nnetwork_rule(host=\"pypi.org\", protocol=\"https\", decision=\"allow\")\n"), 0o644)
	bad := filepath.Join(e.ws, "bad.rules")
	os.WriteFile(bad, []byte("\nprefix_rule(pattern=[\"x\"], decision=\"maybe\")\n"), 0o644)
	cases := []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{"check", file, "--", "git", "push", "origin"}, 0,
			`{"matchedRules":[{"prefixRuleMatch":{"matchedPrefix":["git","push"],"decision":"prompt"}}],"decision":"prompt"}` + "\n", file + ":2: network_rule allows pypi.org"},
		{[]string{"check", bad, "--", "x"}, 1, "", bad + ":2: invalid decision"},
		{[]string{"check", file}, 2, "", "give the command after --"},
		{nil, 2, "", "usage: moat rules check"},
		{[]string{"-h"}, 0, "", "usage: moat rules check"},
	}
	for _, c := range cases {
		via := runCmd(t, e.cmd("moat", append([]string{"rules"}, c.args...)...), "")
		direct := runCmd(t, e.cmd("moat-rules", c.args...), "")
		if via != direct || via.code != c.code || via.stdout != c.stdout && c.stdout != "" || !strings.Contains(via.stderr, c.stderr) {
			t.Errorf("moat rules %q: %+v; moat-rules: %+v; want exit %d, stdout %q, stderr with %q", c.args, via, direct, c.code, c.stdout, c.stderr)
		}
	}

	alone := t.TempDir()
	b, err := os.ReadFile(filepath.Join(binDir, "moat"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(alone, "moat"), b, 0o755)
	e.vars = append(e.vars, "PATH="+binDir+":/usr/bin:/bin") // the real ones on PATH are not taken
	for _, c := range []string{"mcp", "rules"} {
		got := runCmd(t, e.cmd(filepath.Join(alone, "moat"), c, "-h"), "")
		if got.code != 1 || got.stdout != "" || !strings.Contains(got.stderr, "moat "+c+" is the program moat-"+c+", which is not in "+alone) ||
			!strings.Contains(got.stderr, "go install ./cmd/...") {
			t.Errorf("moat %s with no moat-%s: %+v", c, c, got)
		}
	}
}

// TestMoatStatic: the moat the tests run, as scripts/build makes it for
// users, has no program interpreter: no dynamic loader at each of an
// agent's commands.
func TestMoatStatic(t *testing.T) {
	f, err := elf.Open(filepath.Join(binDir, "moat"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("moat is dynamically linked (it has a PT_INTERP): build it with scripts/build")
		}
	}
}
