package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moatsec/moat/pkg/profile"
	"github.com/moatsec/moat/pkg/wire"
)

// TestIrreversibleOperationsAsk: what destroys uncommitted work or remote
// history prompts, with a reason naming what would be lost; the profile's
// irreversible key turns it into a denial or lets it through. Columns:
// workspace-net (default: prompt), careful (irreversible = "deny"),
// reckless (irreversible = "allow").
func TestIrreversibleOperationsAsk(t *testing.T) {
	w := newWorld(t)
	e := New(Options{})
	tests := []struct {
		argv []string
		want string
		lost string // in the reason
	}{
		{argv("git reset --hard"), "PDA", "uncommitted change"},
		{argv("git reset --hard origin/main"), "PDA", "uncommitted change"},
		{argv("git clean -fdx"), "PDA", "ignored ones included"},
		{argv("git clean -f"), "PDA", "untracked files"},
		{argv("git push --force origin main"), "PDA", "commits others pushed"},
		{argv("git push -f"), "PDA", "commits others pushed"},
		{argv("git push --force-with-lease"), "PDA", "commits others pushed"},
		{argv("git push origin +main"), "PDA", "forces the update"},
		{argv("git push origin :old-branch"), "PDA", "deletes a branch"},
		{argv("git push --delete origin v1"), "PDA", "deletes a branch"},
		{argv("git checkout -- ."), "PDA", "overwrites uncommitted changes"},
		{argv("git checkout ."), "PDA", "overwrites every uncommitted change"},
		{argv("git checkout -f main"), "PDA", "throws away"},
		{argv("git restore file.txt"), "PDA", "overwrites uncommitted changes"},
		{argv("git switch --discard-changes main"), "PDA", "throws away"},
		{argv("git stash drop"), "PDA", "deletes a stash"},
		{argv("git stash clear"), "PDA", "every stash"},
		{argv("git branch -D topic"), "PDA", "merged nowhere"},
		{argv("git reflog expire --expire=now --all"), "PDA", "lost commits"},
		{argv("git gc --prune=now"), "PDA", "unreachable commits"},
		{argv("git filter-branch --tree-filter x HEAD"), "PDA", "rewrites every commit"},
		{sh("cd sub && git reset --hard HEAD~3"), "PDA", "uncommitted change"},
		// ordinary, and kept
		{argv("git reset HEAD~1"), "AAA", ""},
		{argv("git reset --soft HEAD~1"), "AAA", ""},
		{argv("git clean -n -d"), "AAA", ""},
		{argv("git push origin main"), "AAA", ""},
		{argv("git checkout main"), "AAA", ""},
		{argv("git checkout -b topic"), "AAA", ""},
		{argv("git restore --staged file.txt"), "AAA", ""},
		{argv("git stash"), "AAA", ""},
		{argv("git stash pop"), "AAA", ""},
		{argv("git branch -d topic"), "AAA", ""},
	}
	for _, tt := range tests {
		for i, prof := range []string{"workspace-net", "careful", "reckless"} {
			d := w.decide(t, e, prof, tt.argv)
			if want := verdictOf[tt.want[i]]; d.Verdict != want {
				t.Errorf("%q under %s = %s, want %s: %v", tt.argv, prof, d.Verdict, want, d.Reasons)
				continue
			}
			if tt.lost != "" && i < 2 && (!strings.HasPrefix(d.Reasons[0].Rule, "irreversible.") || !strings.Contains(d.Reasons[0].Message, tt.lost)) {
				t.Errorf("%q under %s: first reason %v does not say %q", tt.argv, prof, d.Reasons[0], tt.lost)
			}
		}
	}
}

// TestIrreversibleKey: profiles.toml takes prompt, deny or allow, and
// refuses anything else naming the key.
func TestIrreversibleKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "profiles.toml")
	os.WriteFile(path, []byte("[profiles.x]\nextends = \"workspace-write\"\nirreversible = \"sometimes\"\n"), 0o600)
	if _, err := profile.LoadCatalog(path); err == nil || !strings.Contains(err.Error(), "irreversible") {
		t.Fatalf("err = %v, want one naming irreversible", err)
	}
	w := newWorld(t)
	if w.profiles["careful"].Irreversible != wire.VerdictDeny || w.profiles["workspace-write"].Irreversible != "" {
		t.Fatalf("resolved: %q, %q", w.profiles["careful"].Irreversible, w.profiles["workspace-write"].Irreversible)
	}
}
