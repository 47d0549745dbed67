package policyd_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moatsec/moat/pkg/policy"
	"github.com/moatsec/moat/pkg/policyd"
)

const legacyLine = `prefix_rule(pattern = ["git", "push"], decision = "allow", justification = "moat grant g1 by alice at 2026-11-01T10:00:00Z (asked in /w, profile workspace-net)")` + "\n"

// TestLegacyGrantRulesRetired: the file an older policyd appended rule
// grants to, in the rules it loads, allowed each command everywhere; it is
// moved out before loading, and git push is no longer allowed by it.
func TestLegacyGrantRulesRetired(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules")
	os.MkdirAll(rules, 0o755)
	os.WriteFile(filepath.Join(rules, policyd.LegacyGrantRules), []byte("# moat grants\n"+legacyLine), 0o644)
	keep := filepath.Join(dir, "grants.rules.legacy")
	moved, err := policyd.RetireLegacyGrantRules(rules, keep)
	if err != nil || moved != keep {
		t.Fatalf("retire: %q, %v; want it moved to %s", moved, err, keep)
	}
	if _, err := os.Stat(filepath.Join(rules, policyd.LegacyGrantRules)); !os.IsNotExist(err) {
		t.Errorf("the old file is still among the rules: %v", err)
	}
	if b, _ := os.ReadFile(keep); string(b) != "# moat grants\n"+legacyLine {
		t.Errorf("kept copy differs: %q", b)
	}
	e := policy.New(policy.Options{})
	w := &policyd.RulesWatcher{Engine: e, Paths: []string{rules}, Logger: slog.New(slog.DiscardHandler)}
	if err := w.Load(); err != nil {
		t.Fatal(err)
	}
	if n := e.Rules().Len(); n != 0 {
		t.Errorf("%d rules loaded after retiring, want 0", n)
	}
}

// TestLegacyGrantRulesMixed: old grant lines mixed with a person's own
// rules stop policyd with what to do, and nothing is moved.
func TestLegacyGrantRulesMixed(t *testing.T) {
	rules := t.TempDir()
	file := filepath.Join(rules, policyd.LegacyGrantRules)
	body := legacyLine + `prefix_rule(pattern = ["make"], decision = "allow")` + "\n"
	os.WriteFile(file, []byte(body), 0o644)
	_, err := policyd.RetireLegacyGrantRules(rules, filepath.Join(t.TempDir(), "keep"))
	if err == nil || !strings.Contains(err.Error(), "move your own rules") {
		t.Fatalf("retire: %v; want a refusal saying what to do", err)
	}
	if b, _ := os.ReadFile(file); string(b) != body {
		t.Errorf("file changed: %q", b)
	}
}

// TestOwnGrantsFileLeftAlone: a person's own rules file of that name,
// without policyd's lines, stays where it is.
func TestOwnGrantsFileLeftAlone(t *testing.T) {
	rules := t.TempDir()
	file := filepath.Join(rules, policyd.LegacyGrantRules)
	os.WriteFile(file, []byte(`prefix_rule(pattern = ["make"], decision = "allow")`+"\n"), 0o644)
	moved, err := policyd.RetireLegacyGrantRules(rules, filepath.Join(t.TempDir(), "keep"))
	if err != nil || moved != "" {
		t.Fatalf("retire: %q, %v; want nothing done", moved, err)
	}
	if _, err := os.Stat(file); err != nil {
		t.Error(err)
	}
}
