package policy_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moatsec/moat/pkg/policy"
)

// loadLine writes line to a rules file and loads it.
func loadLine(t *testing.T, line string) *policy.Ruleset {
	t.Helper()
	f := filepath.Join(t.TempDir(), "grants.rules")
	if err := os.WriteFile(f, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	rs, err := policy.LoadRules(f)
	if err != nil {
		t.Fatalf("%q does not load: %v", line, err)
	}
	return rs
}

// TestPrefixRuleLine: every UTF-8 word is written so that the file loads and
// the rule matches exactly that word (and not a neighbour); words that are
// not UTF-8 are refused.
func TestPrefixRuleLine(t *testing.T) {
	for _, w := range []string{
		"plain", "", " ", "a b", `"`, `'`, `\`, `\x41`, "\n", "\r\n", "\t", "\x00", "\x01", "\x7f",
		"\u0085", "\u2028", "\ufeff", "é", "\U0001F600", "{x}", `f"{x}"`, "@decorator", "# not a comment",
		"x: int = 1", "def f():", ")", "]", "prefix_rule(pattern = [\"rm\"])", "$HOME", "*", "~/x",
	} {
		argv := []string{"python3", "-c", w}
		line, err := policy.PrefixRuleLine(argv, "allow", "moat grant g1 by "+w)
		if err != nil {
			t.Errorf("%q: %v", w, err)
			continue
		}
		if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
			t.Errorf("%q: not one line: %q", w, line)
		}
		rs := loadLine(t, line)
		if got := rs.Check(argv, false, "/").Decision; got != "allow" {
			t.Errorf("%q: the rule does not match its own words (%s)\n%s", w, got, line)
		}
		if got := rs.Check([]string{"python3", "-c", w + "x"}, false, "/").Decision; got == "allow" {
			t.Errorf("%q: the rule matches another word\n%s", w, line)
		}
	}
	for _, bad := range [][]string{
		{"python3", "-c", "print('\xff')"}, {"\xc3"}, {"ok", "\xed\xa0\x80"}, // a lone surrogate
		{},
	} {
		if line, err := policy.PrefixRuleLine(bad, "allow", "j"); err == nil {
			t.Errorf("%q: written as %q, want an error", bad, line)
		}
	}
	if _, err := policy.PrefixRuleLine([]string{"ls"}, "maybe", "j"); err == nil {
		t.Error("decision maybe: want an error")
	}
	// A justification that is not UTF-8 is made text; the rule still loads.
	line, err := policy.PrefixRuleLine([]string{"ls"}, "prompt", "by \xff")
	if err != nil {
		t.Fatal(err)
	}
	if got := loadLine(t, line).Check([]string{"ls"}, false, "/").Decision; got != "prompt" {
		t.Fatalf("prompt rule: %s", got)
	}
}

// FuzzPrefixRuleLine: whatever the words, either an error or a line that
// loads and matches exactly them.
func FuzzPrefixRuleLine(f *testing.F) {
	f.Add("git", "push", "by alice")
	f.Add("a\xffb", "\"", "\n")
	f.Add("\\", "'''", "\u2028")
	f.Fuzz(func(t *testing.T, a, b, j string) {
		argv := []string{a, b}
		line, err := policy.PrefixRuleLine(argv, "allow", j)
		if err != nil {
			return
		}
		rs := loadLine(t, line)
		if got := rs.Check(argv, false, "/").Decision; got != "allow" {
			t.Fatalf("%q: does not match its own words\n%s", argv, line)
		}
	})
}
