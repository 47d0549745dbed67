package profile

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/moatsec/moat/pkg/wire"
)

// TestAgentConfigProtected: the agents' configuration is write-denied in
// every writable workspace, even where it does not exist yet; a custom
// profile may release an entry by name, a .moat-profile may not.
func TestAgentConfigProtected(t *testing.T) {
	f := newFixture(t)
	r := f.resolver(t, false, "[profiles.subs]\nextends = \"workspace-write\"\nrelease = [\".gitmodules\", \".husky\"]\n")
	agents := []string{".mcp.json", ".claude", ".cursor", ".gemini", ".devcontainer", ".gitmodules", ".codex", ".vscode"}
	for _, name := range []string{"workspace-write", "workspace-net"} {
		p, err := r.Resolve(&wire.ResolveRequest{Profile: name, Workspace: f.ws})
		if err != nil {
			t.Fatal(err)
		}
		for _, rel := range agents {
			if !slices.Contains(p.FS.WriteDeny, filepath.Join(f.ws, rel)) {
				t.Errorf("%s: %s not write-denied", name, rel)
			}
		}
		for _, rel := range []string{".husky", ".pre-commit-config.y*ml", ".aider.conf.yml", "lefthook.*"} {
			if !slices.Contains(p.Guards(f.ws), filepath.Join(f.ws, rel)) {
				t.Errorf("%s: %s not guarded", name, rel)
			}
		}
	}
	p, err := r.Resolve(&wire.ResolveRequest{Profile: "subs", Workspace: f.ws})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(p.FS.WriteDeny, filepath.Join(f.ws, ".gitmodules")) || !slices.Contains(p.FS.WriteDeny, filepath.Join(f.ws, ".mcp.json")) {
		t.Fatalf("release = [\".gitmodules\"]: write deny = %v", p.FS.WriteDeny)
	}
	if !slices.Equal(p.FS.Unguarded, []string{".husky"}) || slices.Contains(p.Guards(f.ws), filepath.Join(f.ws, ".husky")) || !slices.Contains(p.Guards(f.ws), filepath.Join(f.ws, ".zed")) {
		t.Fatalf("release = [\".husky\"]: unguarded %v, guards %v", p.FS.Unguarded, p.Guards(f.ws))
	}
	open := f.resolver(t, true, "")
	for _, name := range []string{"offline", "trusted"} {
		p, err := open.Resolve(&wire.ResolveRequest{Profile: name, Workspace: f.ws})
		if err != nil {
			t.Fatal(err)
		}
		if g := p.Guards(f.ws); len(g) != 0 || len(p.FS.WriteDenyGlobs) != 0 {
			t.Errorf("%s guards %v %v", name, g, p.FS.WriteDenyGlobs)
		}
	}
	for _, bad := range []string{".git/config", ".moat-profile", ".moat", "src"} {
		_, err := LoadCatalog(writeTemp(t, "[profiles.x]\nextends = \"workspace-write\"\nrelease = [\""+bad+"\"]\n"))
		if err == nil {
			t.Errorf("release = [%q] was accepted", bad)
		}
	}
	write(t, filepath.Join(f.ws, DirFile), "release = [\".mcp.json\"]\n")
	defer os.Remove(filepath.Join(f.ws, DirFile))
	_, err = r.Resolve(&wire.ResolveRequest{Profile: "workspace-write", Workspace: f.ws})
	wantCode(t, err, wire.CodeDenied, "widen")
}

func writeTemp(t *testing.T, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "profiles.toml")
	write(t, p, data)
	return p
}

// TestHomeInsideWorkspace: a workspace that holds a home directory is
// refused, as a home itself is.
func TestHomeInsideWorkspace(t *testing.T) {
	f := newFixture(t)
	home := filepath.Join(f.ws, "alice")
	write(t, filepath.Join(home, ".bashrc"), "# rc\n")
	t.Setenv("HOME", home)
	r := f.resolver(t, false, "")
	for _, ws := range []string{f.ws, filepath.Dir(f.ws)} {
		_, err := r.Resolve(&wire.ResolveRequest{Profile: "workspace-write", Workspace: ws})
		wantCode(t, err, wire.CodeBadRequest, "holds the home directory "+home)
	}
	if _, err := r.Resolve(&wire.ResolveRequest{Profile: "workspace-write", Workspace: filepath.Join(f.ws, "src")}); err != nil {
		t.Fatalf("a sibling of the home: %v", err)
	}
}

// TestSystemDirectoryReasons: each refused system directory says why.
func TestSystemDirectoryReasons(t *testing.T) {
	f := newFixture(t)
	r := f.resolver(t, false, "")
	for ws, msg := range map[string]string{
		"/root": "the root user's home directory",
		"/home": "holds the users' home directories",
		"/tmp":  "shared by every user",
		"/etc":  "system directory",
	} {
		if _, err := os.Stat(ws); err != nil {
			continue
		}
		_, err := r.Resolve(&wire.ResolveRequest{Profile: "workspace-write", Workspace: ws})
		wantCode(t, err, wire.CodeBadRequest, msg)
	}
}

// TestGlobDepths: ** in a .moat-profile matches zero to four directories,
// for reading and writing, and the write pattern travels for the post-run
// check.
func TestGlobDepths(t *testing.T) {
	f := newFixture(t)
	r := f.resolver(t, false, "")
	var want []string
	for _, rel := range []string{"g/s0.txt", "g/a/s1.txt", "g/a/b/s2.txt", "g/a/b/c/s3.txt", "g/a/b/c/d/s4.txt"} {
		write(t, filepath.Join(f.ws, rel), "secret")
		want = append(want, filepath.Join(f.ws, rel))
	}
	write(t, filepath.Join(f.ws, "g/a/keep.md"), "fine")
	write(t, filepath.Join(f.ws, DirFile), "read_deny = [\"g/**/*.txt\"]\nwrite_deny = [\"g/**/*.txt\"]\n")
	p, err := r.Resolve(&wire.ResolveRequest{Profile: "workspace-write", Workspace: f.ws})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		if !slices.Contains(p.FS.ReadDeny, w) || !slices.Contains(p.FS.WriteDeny, w) {
			t.Errorf("%s: not denied (read %v, write %v)", w, slices.Contains(p.FS.ReadDeny, w), slices.Contains(p.FS.WriteDeny, w))
		}
	}
	if slices.Contains(p.FS.ReadDeny, filepath.Join(f.ws, "g/a/keep.md")) {
		t.Errorf("keep.md denied")
	}
	if !slices.Contains(p.FS.WriteDenyGlobs, filepath.Join(f.ws, "g/**/*.txt")) {
		t.Errorf("write_deny_globs = %v", p.FS.WriteDenyGlobs)
	}
}

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@t", "-c", "protocol.file.allow=always", "-c", "init.defaultBranch=main"}, args...)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// TestWorktreeAndSubmoduleWorkspaces: where .git is a file, the file is
// protected and the git directories it leads to become writable, with
// their code-running files protected; a .git file that leads anywhere else
// adds nothing.
func TestWorktreeAndSubmoduleWorkspaces(t *testing.T) {
	f := newFixture(t)
	r := f.resolver(t, false, "")
	main := filepath.Join(filepath.Dir(f.ws), "main")
	os.MkdirAll(main, 0o755)
	git(t, main, "init", "-q")
	git(t, main, "commit", "-q", "--allow-empty", "-m", "one")
	wt := filepath.Join(filepath.Dir(f.ws), "wt")
	git(t, main, "worktree", "add", "-q", wt)
	lib := filepath.Join(filepath.Dir(f.ws), "lib")
	os.MkdirAll(lib, 0o755)
	git(t, lib, "init", "-q")
	git(t, lib, "commit", "-q", "--allow-empty", "-m", "lib")
	git(t, main, "submodule", "add", "-q", lib, "sub")

	common := filepath.Join(main, ".git")
	for _, tc := range []struct {
		ws            string
		write, denied []string
	}{
		{wt, []string{filepath.Join(common, "worktrees", "wt"), common},
			[]string{filepath.Join(wt, ".git"), filepath.Join(common, "config"), filepath.Join(common, "hooks"), filepath.Join(common, "worktrees", "wt", "commondir")}},
		{filepath.Join(main, "sub"), []string{filepath.Join(common, "modules", "sub")},
			[]string{filepath.Join(main, "sub", ".git"), filepath.Join(common, "modules", "sub", "config"), filepath.Join(common, "modules", "sub", "hooks")}},
	} {
		p, err := r.Resolve(&wire.ResolveRequest{Profile: "workspace-write", Workspace: tc.ws})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.write {
			if !slices.Contains(p.FS.Write, w) {
				t.Errorf("%s: %s not writable: %v", tc.ws, w, p.FS.Write)
			}
		}
		for _, d := range tc.denied {
			if !slices.Contains(p.FS.WriteDeny, d) {
				t.Errorf("%s: %s not write-denied: %v", tc.ws, d, p.FS.WriteDeny)
			}
		}
		if slices.Contains(p.FS.WriteDeny, filepath.Join(tc.ws, ".git", "config")) {
			t.Errorf("%s: .git/config listed under a .git file", tc.ws)
		}
	}
	// A .git file that points at a directory that is not this checkout's
	// git directory widens nothing.
	for _, target := range []string{"/etc", common, filepath.Join(common, "modules", "sub")} {
		write(t, filepath.Join(f.ws, ".git"), "gitdir: "+target+"\n")
		p, err := r.Resolve(&wire.ResolveRequest{Profile: "workspace-write", Workspace: f.ws})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range p.FS.Write {
			if within(w, filepath.Dir(main)) && w != f.ws || within(w, "/etc") {
				t.Errorf("gitdir: %s widened the writes to %s", target, w)
			}
		}
	}
}
