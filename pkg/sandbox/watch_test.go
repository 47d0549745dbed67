//go:build linux

package sandbox

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/wire"
	"golang.org/x/sys/unix"
)

func put(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o755); err != nil {
		t.Fatal(err)
	}
}

func foundPaths(f []finding) []string {
	var out []string
	for _, x := range f {
		out = append(out, x.path)
	}
	slices.Sort(out)
	return out
}

// begin starts a watch as Run does: the protected paths are held.
func begin(p *wire.Profile) *watch {
	w, extra := watchRun(p)
	w.hold(p.FS.WriteDeny, extra)
	return w
}

// TestWatch: before a run every git directory's surfaces are listed for
// protection; after it, what appeared unheld and could run a program is
// found — and nothing else.
func TestWatch(t *testing.T) {
	ws := t.TempDir()
	outside := t.TempDir()
	put(t, ws+"/.git/HEAD", "ref: refs/heads/main\n")
	put(t, ws+"/.git/config", "[core]\n\tfsmonitor = the-user-s-own\n")
	put(t, ws+"/vendor/lib/.git/HEAD", "ref: refs/heads/main\n")
	put(t, ws+"/vendor/lib/.git/config", "[core]\n\tbare = false\n")
	os.MkdirAll(ws+"/vendor/lib/.git/hooks", 0o755)
	put(t, ws+"/wt/.git", "gitdir: ../.git/worktrees/wt\n")
	put(t, ws+"/src/main.go", "package main\n")
	// A protected directory holding what looks like a planted repository
	// (a quarantine kept inside the workspace): the run could not write
	// there, so nothing is found in it.
	put(t, ws+"/.moat/q/r/.git/HEAD", "ref: refs/heads/main\n")
	put(t, ws+"/.moat/q/r/.git/hooks/pre-commit", "#!/bin/sh\n")
	p := &wire.Profile{Workspace: ws, FS: wire.FS{Write: []string{ws}, WriteDeny: []string{ws + "/.moat"},
		WriteDenyGlobs: []string{ws + "/**/*.pem"}}}

	w, extra := watchRun(p)
	for _, want := range []string{ws + "/.git/config", ws + "/vendor/lib/.git/config", ws + "/vendor/lib/.git/hooks", ws + "/wt/.git"} {
		if !slices.Contains(extra, want) {
			t.Errorf("%s not protected: %v", want, extra)
		}
	}
	w.hold(extra)
	if f := w.check(); len(f) != 0 {
		t.Fatalf("nothing changed, found %v", f)
	}

	// A run (a) and another beside it (b).
	a, b := begin(p), begin(p)
	old := time.Now().Add(-time.Hour)
	put(t, ws+"/made/.git/HEAD", "ref: refs/heads/main\n")
	put(t, ws+"/made/.git/config", "[core]\n\trepositoryformatversion = 0\n\tfsmonitor = \"touch /x\"\n")
	put(t, ws+"/made/.git/hooks/pre-commit.sample", "#!/bin/sh\n")
	put(t, ws+"/made/.git/hooks/post-checkout", "#!/bin/sh\ntouch /x\n")
	put(t, ws+"/plain/.git/HEAD", "ref: refs/heads/main\n")
	put(t, ws+"/plain/.git/config", "[core]\n\tbare = false\n")
	put(t, ws+"/plain/.git/hooks/pre-push.sample", "#!/bin/sh\n")
	put(t, ws+"/away/.git", "gitdir: "+outside+"\n")
	os.MkdirAll(ws+"/linked", 0o755)
	os.Symlink(outside, ws+"/linked/.git")
	put(t, ws+"/vendor/lib/.git/commondir", "../../../made/.git\n")
	put(t, ws+"/src/key.pem", "x")
	put(t, ws+"/root.pem", "x") // in the workspace's own directory
	// Setting the times back hides nothing: ctime moves on.
	os.Chtimes(ws+"/src", old, old)
	os.Chtimes(ws+"/vendor/lib/.git", old, old)

	want := []string{ws + "/away/.git", ws + "/linked/.git", ws + "/made/.git/config", ws + "/made/.git/hooks/post-checkout", ws + "/root.pem", ws + "/src/key.pem"}
	if got := foundPaths(b.check()); !slices.Equal(got, want) {
		t.Errorf("run b found\n %v, want\n %v", got, want)
	}
	// a checks after b, whose look absorbed the changes: a still finds them.
	if got := foundPaths(a.check()); !slices.Equal(got, want) {
		t.Errorf("run a found\n %v, want\n %v", got, want)
	}
}

// TestQuarantine: found files move under the quarantine, keeping their
// path, and leave the workspace.
func TestQuarantine(t *testing.T) {
	ws, q := t.TempDir(), t.TempDir()
	put(t, ws+"/r/.git/config", "[alias]\n\tx = !sh\n")
	os.Symlink("/etc/passwd", ws+"/r/.git/hooks")
	moved := quarantine(q, []string{ws}, []finding{{ws + "/r/.git/config", "why"}, {ws + "/r/.git/hooks", "link"}})
	if len(moved) != 2 {
		t.Fatalf("moved %v", moved)
	}
	for _, m := range moved {
		if _, err := os.Lstat(m.Path); err == nil {
			t.Errorf("%s still there", m.Path)
		}
		if !strings.HasPrefix(m.MovedTo, q) || !strings.HasSuffix(m.MovedTo, m.Path) {
			t.Errorf("moved to %s", m.MovedTo)
		}
		if _, err := os.Lstat(m.MovedTo); err != nil {
			t.Errorf("not in the quarantine: %v", err)
		}
	}
	// A parent turned into a link after the check (a run still going on
	// beside): nothing outside is moved or deleted.
	outside := t.TempDir()
	put(t, outside+"/victim", "keep\n")
	os.MkdirAll(ws+"/u/.git", 0o755)
	os.Symlink(outside, ws+"/u/.git/hooks")
	moved = quarantine(q, []string{ws}, []finding{{ws + "/u/.git/hooks/victim", "a git hook"}})
	if b, err := os.ReadFile(outside + "/victim"); err != nil || string(b) != "keep\n" || moved[0].MovedTo != "" {
		t.Errorf("through a link: %v %q, %+v", err, b, moved)
	}
	// No quarantine to move to: renamed aside all the same.
	put(t, ws+"/s/.git/config", "[alias]\n\tx = !sh\n")
	moved = quarantine("", []string{ws}, []finding{{ws + "/s/.git/config", "why"}})
	if _, err := os.Lstat(ws + "/s/.git/config"); err == nil || !strings.Contains(moved[0].MovedTo, ws+"/s/.git/.moat-quarantined-") {
		t.Errorf("without a quarantine: %+v", moved)
	}
	if _, err := os.Lstat(moved[0].MovedTo); err != nil {
		t.Errorf("not set aside: %v", err)
	}
}

// TestQuarantineFollowsNoLink: a destination is made below the quarantine's
// directory without following a link there (one a finding before it moved
// in), so nothing lands outside it.
func TestQuarantineFollowsNoLink(t *testing.T) {
	run, outside := t.TempDir(), t.TempDir()
	os.Symlink(outside, run+"/ws")
	fd, err := unix.Open(run, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if into, err := destDir(fd, "ws/.config"); err == nil {
		unix.Close(into)
		t.Errorf("made a destination through a link")
	}
	if _, err := os.Lstat(outside + "/.config"); err == nil {
		t.Errorf("made %s/.config", outside)
	}
	into, err := destDir(fd, "a/b/c")
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(into)
	if fi, err := os.Lstat(run + "/a/b/c"); err != nil || !fi.IsDir() {
		t.Errorf("a/b/c: %v", err)
	}
}

// TestCheckerFollowsNoLink: the check reads nothing through a symbolic
// link below the workspace, whatever a run beside swapped in.
func TestCheckerFollowsNoLink(t *testing.T) {
	ws, outside := t.TempDir(), t.TempDir()
	put(t, outside+"/.git/config", "[core]\n\tfsmonitor = host-file\n")
	put(t, ws+"/real/.git/config", "[core]\n\tbare = false\n")
	os.Symlink(outside, ws+"/link")
	c := &checker{w: &watch{roots: []string{ws}}, seen: map[string]bool{}}
	if _, err := c.read(ws+"/real/.git/config", maxConfig); err != nil {
		t.Fatalf("a plain path: %v", err)
	}
	for _, p := range []string{ws + "/link/.git/config", ws + "/link", outside + "/.git/config"} {
		if data, err := c.read(p, maxConfig); err == nil {
			t.Errorf("read %s: %q", p, data)
		}
	}
	c.gitDir(ws + "/link/.git")
	if len(c.found) != 0 {
		t.Errorf("found through a link: %v", c.found)
	}
}

// TestWatchSkipsAFifoConfig: a run may leave a git directory whose config
// is a FIFO (or a link to a device); the next run's watch reads configs
// for their hooksPath and must neither block on one nor read it forever.
func TestWatchSkipsAFifoConfig(t *testing.T) {
	ws := t.TempDir()
	put(t, ws+"/x/.git/HEAD", "ref: refs/heads/main\n")
	if err := syscall.Mkfifo(ws+"/x/.git/config", 0o644); err != nil {
		t.Fatal(err)
	}
	put(t, ws+"/y/.git/HEAD", "ref: refs/heads/main\n")
	os.Symlink("/dev/zero", ws+"/y/.git/config")
	p := &wire.Profile{Workspace: ws, FS: wire.FS{Write: []string{ws}}}
	done := make(chan []string, 1)
	go func() { _, extra := watchRun(p); done <- extra }()
	select {
	case extra := <-done:
		for _, want := range []string{ws + "/x/.git/config", ws + "/y/.git/config"} {
			if !slices.Contains(extra, want) {
				t.Errorf("%s not protected: %v", want, extra)
			}
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the watch was still reading a git directory's config after 20 s")
	}
}

// TestPatternThroughLink: a pattern's directory reached through a link
// (.config → cfg) shows the host what lies where the link leads. What the
// run made there that the pattern matches is found, whether the link was
// there before the run or the run made it; a link the run made where a
// pattern's directory lies is found itself, wherever it leads.
func TestPatternThroughLink(t *testing.T) {
	ws, outside := t.TempDir(), t.TempDir()
	p := &wire.Profile{Workspace: ws, FS: wire.FS{Write: []string{ws}, WriteDenyGlobs: []string{ws + "/.config/mise*", ws + "/.github/hooks"}}}

	os.MkdirAll(ws+"/cfg", 0o755)
	os.Symlink("cfg", ws+"/.config")
	time.Sleep(2 * settle) // the user's link, made before the run
	w := begin(p)
	put(t, ws+"/cfg/mise.toml", "[hooks]\n")
	put(t, ws+"/cfg/other.toml", "x\n")
	if got, want := foundPaths(w.check()), []string{ws + "/cfg/mise.toml"}; !slices.Equal(got, want) {
		t.Errorf("a link there before the run: found %v, want %v", got, want)
	}

	os.RemoveAll(ws + "/cfg")
	os.Remove(ws + "/.config")
	w = begin(p)
	put(t, ws+"/gh/hooks/x.json", "{}\n")
	os.Symlink("gh", ws+"/.github")
	os.Symlink(outside, ws+"/.config")
	want := []string{ws + "/.config", ws + "/.github", ws + "/gh/hooks"}
	if got := foundPaths(w.check()); !slices.Equal(got, want) {
		t.Errorf("links the run made: found %v, want %v", got, want)
	}
}

// TestGuardedStagedRename: what an earlier run staged and this one renamed
// into a guarded place keeps its old times; it is found all the same, at
// the workspace's top, through a link of the user's, and under a pattern
// with "**" (a directory renamed into place is read whole).
func TestGuardedStagedRename(t *testing.T) {
	ws := t.TempDir()
	os.MkdirAll(ws+"/cfg", 0o755)
	os.Symlink("cfg", ws+"/docs")
	p := &wire.Profile{Workspace: ws, FS: wire.FS{Write: []string{ws}, WriteDenyGlobs: []string{ws + "/**/*.pem"}}}
	w := begin(p)
	put(t, ws+"/gstage/hooks/x.json", "{}\n")
	put(t, ws+"/cstage/mise.toml", "[hooks]\n")
	put(t, ws+"/cstage/lefthook.yml", "x\n")
	put(t, ws+"/pstage/a/key.pem", "x")
	w.check()
	time.Sleep(2 * settle)

	w = begin(p)
	for _, mv := range [][2]string{{"gstage", ".github"}, {"cstage", ".config"}, {"pstage", "src"}} {
		if err := os.Rename(ws+"/"+mv[0], ws+"/"+mv[1]); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{ws + "/.config/lefthook.yml", ws + "/.config/mise.toml", ws + "/.github/hooks", ws + "/src/a/key.pem"}
	if got := foundPaths(w.check()); !slices.Equal(got, want) {
		t.Errorf("renamed into place: found\n %v, want\n %v", got, want)
	}
}

// TestGuardedNested: a repository inside the workspace guards its own top:
// what is there is held, what a run makes there is found; a dangling link
// at a guarded name refuses nothing, and is found once a run gives it a
// target.
func TestGuardedNested(t *testing.T) {
	ws := t.TempDir()
	put(t, ws+"/sub/.git/HEAD", "ref: refs/heads/main\n")
	put(t, ws+"/sub/.pre-commit-config.yaml", "repos: []\n")
	os.Symlink("missing.yml", ws+"/lefthook.yml")
	time.Sleep(2 * settle)
	p := &wire.Profile{Workspace: ws, FS: wire.FS{Write: []string{ws}}}
	w, extra := watchRun(p)
	if !slices.Contains(extra, ws+"/sub/.pre-commit-config.yaml") {
		t.Errorf("the nested repository's pre-commit configuration is not held: %v", extra)
	}
	if slices.Contains(extra, ws+"/lefthook.yml") {
		t.Errorf("a dangling link is passed on to be refused: %v", extra)
	}
	w.hold(extra)
	put(t, ws+"/sub/lefthook.yml", "x\n")
	put(t, ws+"/sub/.husky/pre-commit", "x\n")
	put(t, ws+"/missing.yml", "pre-commit: {}\n")
	want := []string{ws + "/lefthook.yml", ws + "/sub/.husky", ws + "/sub/lefthook.yml"}
	if got := foundPaths(w.check()); !slices.Equal(got, want) {
		t.Errorf("found\n %v, want\n %v", got, want)
	}

	// A profile that releases .husky leaves it.
	p.FS.Unguarded = []string{".husky"}
	w = begin(p)
	if got := foundPaths(w.check()); slices.Contains(got, ws+"/sub/.husky") {
		t.Errorf("released .husky found: %v", got)
	}
	p.FS.Unguarded = nil

	// A repository the run makes, and a directory it makes a worktree's
	// top with a .git file: what is guarded there is found.
	w = begin(p)
	put(t, ws+"/newrepo/.git/HEAD", "ref: refs/heads/main\n")
	put(t, ws+"/newrepo/.pre-commit-config.yaml", "repos: []\n")
	put(t, ws+"/src/.git", "gitdir: "+ws+"/sub/.git\n")
	put(t, ws+"/src/.husky/pre-commit", "x\n")
	wantFound(t, w.check(), ws+"/newrepo/.pre-commit-config.yaml", ws+"/src/.husky")
}

// wantFound fails t unless every path in want is among found.
func wantFound(t *testing.T, found []finding, want ...string) {
	t.Helper()
	got := foundPaths(found)
	for _, p := range want {
		if !slices.Contains(got, p) {
			t.Errorf("%s not found: %v", p, got)
		}
	}
}

// TestGuardedLinkOut: a user's guarded name linked to a file outside the
// writable roots (a shared configuration) is left, run after run: the run
// could not have written there.
func TestGuardedLinkOut(t *testing.T) {
	ws, shared := t.TempDir(), t.TempDir()
	put(t, shared+"/pc.yaml", "repos: []\n")
	os.Symlink(shared+"/pc.yaml", ws+"/.pre-commit-config.yaml")
	time.Sleep(2 * settle)
	p := &wire.Profile{Workspace: ws, FS: wire.FS{Write: []string{ws}}}
	w := begin(p)
	if got := foundPaths(w.check()); len(got) != 0 {
		t.Errorf("found %v", got)
	}
}

// TestQuarantineDirAcrossFilesystems: what cannot be moved to a quarantine
// on another filesystem (a directory, a file over maxCopy) is set aside in
// its own directory, where no tool reads it, and nothing is deleted; a
// small file is copied there.
func TestQuarantineDirAcrossFilesystems(t *testing.T) {
	ws := t.TempDir()
	q, err := os.MkdirTemp("/dev/shm", "moat-q-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(q)
	outside := t.TempDir()
	put(t, outside+"/victim", "keep\n")
	put(t, ws+"/.husky/pre-commit", "touch /x\n")
	put(t, ws+"/.husky/a/b/c/hook", "touch /x\n")
	os.Symlink(outside, ws+"/.husky/a/out")
	put(t, ws+"/big.pem", "")
	os.Truncate(ws+"/big.pem", 1<<40) // sparse: a terabyte that takes no room
	put(t, ws+"/key.pem", "x")
	moved := quarantine(q, []string{ws}, []finding{{ws + "/.husky", "guarded"}, {ws + "/big.pem", "pattern"}, {ws + "/key.pem", "pattern"}})
	if len(moved) != 3 || strings.Contains(moved[0].Reason+moved[1].Reason, "NOT REMOVED") {
		t.Fatalf("moved %+v", moved)
	}
	for _, m := range moved[:2] {
		if _, err := os.Lstat(m.Path); err == nil {
			t.Errorf("%s is still there: %+v", m.Path, m)
		}
		if !strings.HasPrefix(m.MovedTo, ws+"/.moat-quarantined-") {
			t.Errorf("%s: not set aside in its directory: %+v", m.Path, m)
		}
		if _, err := os.Lstat(m.MovedTo); err != nil {
			t.Errorf("%s: nothing where it was set aside: %v", m.Path, err)
		}
	}
	if !strings.HasPrefix(moved[2].MovedTo, q) {
		t.Errorf("a small file is copied to the quarantine: %+v", moved[2])
	}
	if b, err := os.ReadFile(outside + "/victim"); err != nil || string(b) != "keep\n" {
		t.Errorf("through a link: %v %q", err, b)
	}
	var st unix.Statfs_t
	if unix.Statfs(q, &st) == nil && st.Bfree < st.Blocks/2 {
		t.Errorf("the quarantine's filesystem filled: %d of %d blocks free", st.Bfree, st.Blocks)
	}
}

// TestHeldIsTheSameFile: what this run held and another run's quarantine
// moved aside (in the host's namespace, where this run's mounts are not)
// no longer counts as held: a file this run made by the same name is found.
func TestHeldIsTheSameFile(t *testing.T) {
	ws := t.TempDir()
	put(t, ws+"/.husky/pre-commit", "npm test\n")
	put(t, ws+"/n/.git/HEAD", "ref: refs/heads/main\n")
	put(t, ws+"/n/.git/config", "[core]\n\tbare = false\n")
	time.Sleep(2 * settle)
	p := &wire.Profile{Workspace: ws, FS: wire.FS{Write: []string{ws}}}
	w := begin(p)
	os.Rename(ws+"/.husky", ws+"/.moat-quarantined-x")
	put(t, ws+"/.husky/pre-commit", "touch /x\n")
	os.Rename(ws+"/n/.git/config", ws+"/n/.git/.moat-quarantined-y")
	put(t, ws+"/n/.git/config", "[core]\n\tfsmonitor = touch /x\n")
	wantFound(t, w.check(), ws+"/.husky", ws+"/n/.git/config")
}

// TestQuarantineNested: findings inside another go with it, whatever
// order they came in, and are reported where they went.
func TestQuarantineNested(t *testing.T) {
	ws, q := t.TempDir(), t.TempDir()
	put(t, ws+"/x/.husky/.husky/pre-commit", "P\n")
	moved := quarantine(q, []string{ws}, []finding{{ws + "/x/.husky/.husky", "inner"}, {ws + "/x/.husky", "outer"}})
	if len(moved) != 2 {
		t.Fatalf("moved %+v", moved)
	}
	for _, m := range moved {
		if strings.Contains(m.Reason, "NOT REMOVED") || !strings.HasPrefix(m.MovedTo, q) {
			t.Errorf("%+v", m)
		}
		if _, err := os.Lstat(m.MovedTo); err != nil {
			t.Errorf("%s: not where it is said to be: %v", m.Path, err)
		}
	}
	if ents, _ := os.ReadDir(ws + "/x"); len(ents) != 0 {
		t.Errorf("left in the workspace: %v", ents)
	}
}
