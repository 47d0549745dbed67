package policyd_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/policy"
	"github.com/moatsec/moat/pkg/policyd"
	"github.com/moatsec/moat/pkg/wire"
)

// TestGrantRuleScoped: a rule grant covers what was granted — its
// workspace, its profile, its command — and nothing else, even once
// policyd's rules are loaded again as cmd/policyd loads them; revoking it
// takes its line out of the grants rules file and the command back to a
// prompt. Commands no rule names prompt here (--unknown prompt), the
// case a global allow line would lift.
func TestGrantRuleScoped(t *testing.T) {
	engine := policy.New(policy.Options{Unknown: wire.VerdictPrompt})
	moatHome := t.TempDir() // laid out as cmd/policyd's defaults: MOAT_HOME/rules, and the grants rules file
	rulesDir, file := filepath.Join(moatHome, "rules"), filepath.Join(moatHome, "grants.rules")
	s := start(t, policyd.Config{Engine: engine, RulesFile: file})
	rules := &policyd.RulesWatcher{Engine: engine, Paths: []string{rulesDir}, Logger: quiet}
	if rules.Loads(file) {
		t.Fatalf("%s is among the rules files policyd loads", file)
	}
	// Another copy, on another host, keeps its own file from the bucket.
	file2 := filepath.Join(t.TempDir(), "grants.rules")
	second, err := policyd.Start(s.Conn(t, home.RolePolicyd), policyd.Config{Engine: engine, Logger: quiet, RulesFile: file2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Stop() })
	deploy := []string{"deploy-site", "--prod"}
	g := grant(t, s, "workspace-write", "", wire.ApprovalAnswer{For: "rule"}, deploy...)
	// The copy that asked writes its file at once, the other when its
	// watcher sees the grant: either may have asked.
	for _, f := range []string{file, file2} {
		waitFile(t, f, func(text string) bool { return strings.Contains(text, g.ID) }, f+" to name "+g.ID)
	}
	if err := rules.Load(); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(filepath.Dir(s.ws), "other")
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	c := s.Client(t, home.RoleClient)
	if d := grantCheck(t, c, s.ws, "workspace-write", "", deploy...); !covered(d) {
		t.Fatalf("in scope: %+v", d)
	}
	for name, d := range map[string]wire.Decision{
		"another workspace": grantCheck(t, c, other, "workspace-write", "", deploy...),
		"another profile":   grantCheck(t, c, s.ws, "workspace-net", "", deploy...),
	} {
		if !asked(d) {
			t.Errorf("%s: %+v, want a person asked", name, d)
		}
	}
	if _, err := s.Client(t, home.RoleApprover).Revoke(context.Background(), &wire.RevokeRequest{ID: g.ID}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{file, file2} { // the watcher of the bucket may write them once more
		waitFile(t, f, func(text string) bool { return !strings.Contains(text, g.ID) && strings.HasPrefix(text, "# moat:") },
			f+" without the revoked grant")
	}
	if _, err := policy.LoadRules(file); err != nil {
		t.Fatalf("the rules file does not load: %v", err)
	}
	if err := rules.Load(); err != nil {
		t.Fatal(err)
	}
	if d := grantCheck(t, c, s.ws, "workspace-write", "", deploy...); !asked(d) {
		t.Fatalf("after the revoke: %+v, want a person asked", d)
	}
}

// waitFile waits (generously: the machine may be loaded) until file's text
// satisfies ok.
func waitFile(t *testing.T, file string, ok func(string) bool, what string) {
	t.Helper()
	var b []byte
	var err error
	for i := 0; i < 200; i++ {
		if b, err = os.ReadFile(file); err == nil && ok(string(b)) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("waiting for %s: %v\n%s", what, err, b)
}

// TestRulesWatcherLoads: the grants rules file is refused among the rules
// files policyd loads (cmd/policyd checks it at start), by name or through
// a link.
func TestRulesWatcherLoads(t *testing.T) {
	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules")
	if err := os.MkdirAll(rulesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(rulesDir, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	w := &policyd.RulesWatcher{Paths: []string{rulesDir, filepath.Join(dir, "extra.rules")}}
	for file, want := range map[string]bool{
		filepath.Join(rulesDir, "grants.rules"):        true,
		filepath.Join(dir, "link", "grants.rules"):     true,
		filepath.Join(rulesDir, ".", "grants.rules"):   true,
		filepath.Join(dir, "extra.rules"):              true,
		filepath.Join(dir, "grants.rules"):             false,
		filepath.Join(rulesDir, "grants.txt"):          false,
		filepath.Join(rulesDir, "sub", "grants.rules"): false,
	} {
		if got := w.Loads(file); got != want {
			t.Errorf("Loads(%s) = %v, want %v", file, got, want)
		}
	}
}
