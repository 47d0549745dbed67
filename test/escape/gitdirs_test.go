//go:build linux

package escape

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// hostGit runs git on the host, outside any sandbox, as a person would.
func (w *world) hostGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := w.hostGitErr(dir, args...)
	if err != nil {
		t.Fatalf("host git %v in %s: %v\n%s", args, dir, err, out)
	}
	return out
}

func (w *world) hostGitErr(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@t", "-c", "protocol.file.allow=always",
		"-c", "init.defaultBranch=main", "-c", "advice.detachedHead=false"}, args...)...)
	cmd.Dir = dir
	cmd.Env = []string{"HOME=" + w.home, "PATH=/usr/local/bin:/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM=1"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// plant is a script, run in the sandbox, that tries every way to make the
// host's git run `touch <marker>-<tag>` in the repository at dir (git
// directory gd), both relative to the workspace.
func plant(marker, tag, dir, gd string) string {
	m := marker + "-" + tag
	hook := "printf '#!/bin/sh\\ntouch " + m + "\\n'"
	var b strings.Builder
	b.WriteString("git -C " + dir + " config core.fsmonitor 'touch " + m + "'\n")
	b.WriteString("git -C " + dir + " config remote.b.uploadpack 'touch " + m + "; git-upload-pack'\n")
	b.WriteString("printf '[core]\\n\\tfsmonitor = touch " + m + "\\n' >> " + gd + "/config\n")
	b.WriteString("printf '[core]\\n\\tfsmonitor = touch " + m + "\\n' > " + gd + "/config.worktree\n")
	b.WriteString("mkdir -p " + gd + "/hooks\n")
	for _, h := range []string{"pre-commit", "post-commit", "reference-transaction", "post-index-change", "post-checkout"} {
		b.WriteString(hook + " > " + gd + "/hooks/" + h + "; chmod +x " + gd + "/hooks/" + h + "\n")
	}
	b.WriteString("mv " + gd + "/hooks " + gd + "/hooks.old; mkdir -p " + gd + "/hooks; " + hook + " > " + gd + "/hooks/pre-commit; chmod +x " + gd + "/hooks/pre-commit\n")
	// A copy of the git directory with a planted configuration, and a
	// commondir leading to it.
	b.WriteString("cp -a " + gd + " " + dir + "/.evilgd-" + tag + " 2>/dev/null; printf '[core]\\n\\tfsmonitor = touch " + m + "\\n' > " + dir + "/.evilgd-" + tag + "/config\n")
	b.WriteString("echo $PWD/" + dir + "/.evilgd-" + tag + " > " + gd + "/commondir\n")
	return b.String()
}

// TestGitDirectoriesHold: after a workspace-write run that tried to plant
// a program in every repository of the workspace — the top one, a nested
// one, a submodule, a worktree, one the run made, and redirects through
// commondir and gitdir: — plain git status, commit and fetch on the host
// start none of them. The marker proves it; a control shows the same
// plantings made on the host do start them.
func TestGitDirectoriesHold(t *testing.T) {
	w := newWorld(t)
	marker := filepath.Join(w.base, "pwned")
	bare := filepath.Join(w.base, "bare.git")
	w.hostGit(t, w.base, "init", "-q", "--bare", bare)
	seed := filepath.Join(w.base, "seed")
	os.MkdirAll(seed, 0o755)
	w.hostGit(t, seed, "init", "-q")
	os.WriteFile(filepath.Join(seed, "f"), []byte("f\n"), 0o644)
	w.hostGit(t, seed, "add", "f")
	w.hostGit(t, seed, "commit", "-q", "-m", "seed")
	w.hostGit(t, seed, "push", "-q", bare, "main")

	os.RemoveAll(filepath.Join(w.ws, ".git"))
	w.hostGit(t, w.ws, "init", "-q")
	w.hostGit(t, w.ws, "add", "README.md")
	w.hostGit(t, w.ws, "commit", "-q", "-m", "top")
	lib := filepath.Join(w.ws, "vendor", "lib")
	os.MkdirAll(lib, 0o755)
	w.hostGit(t, lib, "init", "-q")
	os.WriteFile(filepath.Join(lib, "f"), []byte("f\n"), 0o644)
	w.hostGit(t, lib, "add", "f")
	w.hostGit(t, lib, "commit", "-q", "-m", "lib")
	w.hostGit(t, w.ws, "submodule", "add", "-q", bare, "sub")
	w.hostGit(t, w.ws, "commit", "-q", "-m", "sub")
	w.hostGit(t, w.ws, "worktree", "add", "-q", "wt")

	// Control: the host's git does run what is planted this way.
	ctl := filepath.Join(w.base, "control")
	os.MkdirAll(ctl, 0o755)
	w.hostGit(t, ctl, "init", "-q")
	os.WriteFile(filepath.Join(ctl, "f"), []byte("f\n"), 0o644)
	w.hostGit(t, ctl, "add", "f")
	w.hostGit(t, ctl, "commit", "-q", "-m", "c")
	ctlScript := plant(marker, "control", ".", ".git")
	if out, err := exec.Command("bash", "-c", "cd "+ctl+" && "+strings.ReplaceAll(ctlScript, "\n", " ; ")).CombinedOutput(); err != nil {
		t.Logf("control plant: %v %s", err, out)
	}
	w.hostGitErr(ctl, "status")
	if _, err := os.Stat(marker + "-control"); err != nil {
		t.Fatalf("control: planting on the host did not start the marker program, so this test cannot fail: %v", err)
	}
	os.Remove(marker + "-control")

	script := "cd " + w.ws + "\n" +
		plant(marker, "top", ".", ".git") +
		plant(marker, "nested", "vendor/lib", "vendor/lib/.git") +
		plant(marker, "sub", "sub", ".git/modules/sub") +
		plant(marker, "wt", "wt", ".git/worktrees/wt") +
		// a repository the run makes, and .git files it writes
		"git init -q made && git -C made commit -q --allow-empty -m x\n" +
		plant(marker, "made", "made", "made/.git") +
		"git init -q made-gd; printf '[core]\\n\\tfsmonitor = touch " + marker + "-gitdir\\n' >> made-gd/.git/config\n" +
		"mkdir -p redirect && echo 'gitdir: ../made-gd/.git' > redirect/.git\n" +
		"mkdir -p away && echo 'gitdir: " + seed + "/.git' > away/.git\n" +
		"echo \"gitdir: $PWD/made-gd/.git\" > wt/.git; echo \"gitdir: $PWD/made-gd/.git\" > sub/.git\n" +
		"mkdir -p vendor/new && cp -a vendor/lib/.git vendor/new/.git 2>/dev/null; printf '[core]\\n\\tfsmonitor = touch " + marker + "-copied\\n' >> vendor/new/.git/config\n" +
		"mv vendor vendor2 || true\n"
	r := w.run(t, "workspace-write", sh(script), "--json")
	var res struct {
		Quarantined []struct{ Path, MovedTo, Reason string } `json:"quarantined"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("result: %v\n%s", err, r)
	}
	repos := []string{w.ws, lib, filepath.Join(w.ws, "sub"), filepath.Join(w.ws, "wt"), filepath.Join(w.ws, "made"),
		filepath.Join(w.ws, "redirect"), filepath.Join(w.ws, "away"), filepath.Join(w.ws, "vendor", "new"),
		filepath.Join(w.ws, "vendor2", "lib"), filepath.Join(w.ws, "vendor2", "new")}
	for _, repo := range repos {
		if _, err := os.Stat(repo); err != nil {
			continue
		}
		w.hostGitErr(repo, "status")
		w.hostGitErr(repo, "commit", "-q", "--allow-empty", "-m", "host")
		w.hostGitErr(repo, "fetch", "-q", bare, "+refs/heads/*:refs/remotes/b/*")
		w.hostGitErr(repo, "fetch", "-q", "b")
	}
	matches, _ := filepath.Glob(marker + "*")
	if len(matches) > 0 {
		t.Fatalf("the host's git ran a planted program: %v\nrun: %s\nquarantined: %+v", matches, r, res.Quarantined)
	}
	if len(res.Quarantined) == 0 || !strings.Contains(r.stderr, "moat: moved ") {
		t.Fatalf("nothing reported as quarantined:\n%s", r)
	}
	for _, q := range res.Quarantined {
		if _, err := os.Lstat(q.Path); err == nil {
			t.Errorf("%s is still in the workspace", q.Path)
		}
	}

	// The existing repositories still work and commit on the host.
	for _, repo := range []string{w.ws, lib, filepath.Join(w.ws, "sub"), filepath.Join(w.ws, "wt")} {
		if out := w.hostGit(t, repo, "log", "-1", "--format=%s"); strings.TrimSpace(out) != "host" {
			t.Errorf("%s: last commit %q, want the host's", repo, out)
		}
	}
}

// TestPlainGitLeavesNothing: git init, clone, commit and worktree add in a
// run leave nothing to quarantine.
func TestPlainGitLeavesNothing(t *testing.T) {
	w := newWorld(t)
	bare := filepath.Join(w.base, "bare.git")
	w.hostGit(t, w.base, "init", "-q", "--bare", bare)
	os.RemoveAll(filepath.Join(w.ws, ".git"))
	w.hostGit(t, w.ws, "init", "-q")
	w.hostGit(t, w.ws, "add", "README.md")
	w.hostGit(t, w.ws, "commit", "-q", "-m", "top")
	// The bare repository lies outside the workspace: a profile names it
	// to be read (docs/sandbox.md, "What a run sees").
	write(t, filepath.Join(w.moatHome, "profiles.toml"), fmt.Sprintf("[profiles.cloner]\nextends = \"workspace-write\"\nread = [%q]\n", bare))
	r := w.run(t, "cloner", sh("export GIT_AUTHOR_NAME=a GIT_AUTHOR_EMAIL=a@a GIT_COMMITTER_NAME=a GIT_COMMITTER_EMAIL=a@a; "+
		"git init -q fresh && git -C fresh commit -q --allow-empty -m x && git clone -q "+bare+" cloned 2>&1 && "+
		"git clone -q fresh fresh2 && git worktree add -q wt2 && git commit -q --allow-empty -m y && echo ok"), "--json")
	var res struct {
		Stdout      []byte `json:"stdout"`
		Quarantined []any  `json:"quarantined"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || !strings.HasSuffix(string(res.Stdout), "ok\n") {
		t.Fatalf("plain git failed (%v): %s\n%s", err, res.Stdout, r)
	}
	if len(res.Quarantined) > 0 || strings.Contains(r.stderr, "moat: moved") {
		t.Fatalf("plain git was quarantined:\n%s", r)
	}
	if ents, _ := os.ReadDir(filepath.Join(w.moatHome, "quarantine")); len(ents) != 0 {
		t.Fatalf("quarantine holds %v", ents)
	}
}

// TestWorktreeAndSubmoduleCommit: a linked worktree and a submodule
// checkout run under workspace-write and can commit.
func TestWorktreeAndSubmoduleCommit(t *testing.T) {
	w := newWorld(t)
	bare := filepath.Join(w.base, "bare.git")
	w.hostGit(t, w.base, "init", "-q", "--bare", bare)
	main := filepath.Join(w.base, "main")
	os.MkdirAll(main, 0o755)
	w.hostGit(t, main, "init", "-q")
	w.hostGit(t, main, "commit", "-q", "--allow-empty", "-m", "one")
	w.hostGit(t, bare, "fetch", "-q", main, "main:main")
	w.hostGit(t, main, "worktree", "add", "-q", filepath.Join(w.base, "wt"))
	w.hostGit(t, main, "submodule", "add", "-q", bare, "sub")
	for _, ws := range []string{filepath.Join(w.base, "wt"), filepath.Join(main, "sub")} {
		w.ws = ws
		r := w.run(t, "workspace-write", sh("export GIT_AUTHOR_NAME=a GIT_AUTHOR_EMAIL=a@a GIT_COMMITTER_NAME=a GIT_COMMITTER_EMAIL=a@a; "+
			"echo x > new.txt && git add new.txt && git commit -q -m in-sandbox && echo committed; "+
			"echo evil > .git; git config core.fsmonitor 'touch /x'; echo done"))
		if !strings.Contains(r.stdout, "committed") {
			t.Fatalf("%s: commit failed:\n%s", ws, r)
		}
		if out := w.hostGit(t, ws, "log", "-1", "--format=%s"); strings.TrimSpace(out) != "in-sandbox" {
			t.Fatalf("%s: the commit is not there on the host: %q", ws, out)
		}
		if out, _ := w.hostGitErr(ws, "config", "core.fsmonitor"); strings.TrimSpace(out) != "" {
			t.Fatalf("%s: core.fsmonitor set to %q", ws, out)
		}
	}
}

// huskyWorld is a world whose workspace is a real repository running its
// hooks from .husky, as husky sets it, and the marker a planted hook would
// make.
func huskyWorld(t *testing.T) (*world, string) {
	w := newWorld(t)
	os.RemoveAll(filepath.Join(w.ws, ".git"))
	w.hostGit(t, w.ws, "init", "-q")
	w.hostGit(t, w.ws, "config", "core.hooksPath", ".husky")
	return w, filepath.Join(w.base, "pwned")
}

// TestHooksPathHolds: a repository whose own configuration runs hooks from
// the workspace (core.hooksPath = .husky, as husky sets it) keeps them: the
// run can neither change a hook there nor add one.
func TestHooksPathHolds(t *testing.T) {
	w, marker := huskyWorld(t)
	os.MkdirAll(filepath.Join(w.ws, ".husky"), 0o755)
	hook := "#!/bin/sh\nexit 0\n"
	os.WriteFile(filepath.Join(w.ws, ".husky", "pre-commit"), []byte(hook), 0o755)
	w.hostGit(t, w.ws, "add", "README.md")
	w.hostGit(t, w.ws, "commit", "-q", "-m", "top")
	evil := "printf '#!/bin/sh\\ntouch " + marker + "\\n'"
	w.run(t, "workspace-write", sh(evil+" > .husky/pre-commit; "+evil+" > .husky/post-commit; chmod +x .husky/*; "+
		"mv .husky .husky.old; mkdir .husky; "+evil+" > .husky/pre-commit; chmod +x .husky/pre-commit"))
	w.hostGit(t, w.ws, "commit", "-q", "--allow-empty", "-m", "host")
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the host's git ran a hook the run planted")
	}
	unchanged(t, filepath.Join(w.ws, ".husky", "pre-commit"), hook)
	absent(t, filepath.Join(w.ws, ".husky", "post-commit"))
}

// TestGuardedNewTop: a run that makes a directory a worktree's top (a .git
// file leading to the workspace's git directory) or a new repository
// leaves no guarded file there: host git in that directory, whose hooks
// path is relative (.husky), starts no planted hook. A control planted on
// the host does start.
func TestGuardedNewTop(t *testing.T) {
	w, marker := huskyWorld(t)
	w.hostGit(t, w.ws, "add", "README.md")
	w.hostGit(t, w.ws, "commit", "-q", "-m", "top")
	os.MkdirAll(filepath.Join(w.ws, "src"), 0o755)
	os.MkdirAll(filepath.Join(w.ws, "ctl"), 0o755)
	hook := "#!/bin/sh\ntouch " + marker + "-$(basename $PWD)\n"
	for _, p := range writable {
		w.run(t, p, sh(`echo "gitdir: `+w.ws+`/.git" > src/.git; mkdir -p src/.husky
printf '`+hook+`' > src/.husky/pre-commit; chmod +x src/.husky/pre-commit
git init -q newrepo; echo 'repos: []' > newrepo/.pre-commit-config.yaml; echo 'pre-commit: {}' > newrepo/lefthook.yml`))
		absent(t, filepath.Join(w.ws, "src", ".husky"))
		absent(t, filepath.Join(w.ws, "newrepo", ".pre-commit-config.yaml"))
		absent(t, filepath.Join(w.ws, "newrepo", "lefthook.yml"))
		w.hostGitErr(filepath.Join(w.ws, "src"), "commit", "-q", "--allow-empty", "-m", "x")
		absent(t, marker+"-src")
		os.Remove(filepath.Join(w.ws, "src", ".git"))
		os.RemoveAll(filepath.Join(w.ws, "newrepo"))
	}
	// The control: the same .git file and hook, made on the host.
	os.WriteFile(filepath.Join(w.ws, "ctl", ".git"), []byte("gitdir: "+w.ws+"/.git\n"), 0o644)
	os.MkdirAll(filepath.Join(w.ws, "ctl", ".husky"), 0o755)
	os.WriteFile(filepath.Join(w.ws, "ctl", ".husky", "pre-commit"), []byte(hook), 0o755)
	w.hostGitErr(filepath.Join(w.ws, "ctl"), "commit", "-q", "--allow-empty", "-m", "x")
	if _, err := os.Stat(marker + "-ctl"); err != nil {
		t.Fatalf("the control's hook did not run: the test shows nothing (%v)", err)
	}
}
