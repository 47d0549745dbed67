package rules

import (
	stdbytes "bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moatsec/moat/pkg/cli"
)

// TestRulesCheck: moat rules check prints Codex's JSON for a file Codex
// writes (network_rule included), names the parts used in part on stderr,
// and reports a broken file with its line.
func TestRulesCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "default.rules")
	os.WriteFile(good, []byte("prefix_rule([\"git\", \"push\"], \"prompt\")\nnetwork_rule(host=\"pypi.org\", protocol=\"https\", decision=\"allow\")\n"), 0o644)
	bad := filepath.Join(dir, "bad.rules")
	os.WriteFile(bad, []byte("\nprefix_rule(pattern=[\"x\"], decision=\"maybe\")\n"), 0o644)
	tests := []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{"rules", "check", good, "--", "git", "push", "origin"}, cli.ExitOK,
			`{"matchedRules":[{"prefixRuleMatch":{"matchedPrefix":["git","push"],"decision":"prompt"}}],"decision":"prompt"}`, good + ":2: network_rule allows pypi.org"},
		{[]string{"rules", "check", good, "--", "git", "status"}, cli.ExitOK, `{"matchedRules":[]}`, ""},
		{[]string{"rules", "check", "--resolve-host-executables", good, "--", "/usr/bin/git", "push"}, cli.ExitOK, `"resolvedProgram":"/usr/bin/git"`, ""},
		{[]string{"rules", "check", bad, "--", "x"}, cli.ExitError, "", bad + ":2: invalid decision"},
		{[]string{"rules", "check", good}, cli.ExitUsage, "", "give the command after --"},
		{[]string{"rules"}, cli.ExitUsage, "", "usage: moat rules check"},
	}
	for _, tt := range tests {
		var out, errb stdbytes.Buffer
		code := Main(tt.args[1:], &out, &errb)
		if code != tt.code || !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errb.String(), tt.stderr) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %d, %q, %q", tt.args, code, out.String(), errb.String(), tt.code, tt.stdout, tt.stderr)
		}
	}
}
