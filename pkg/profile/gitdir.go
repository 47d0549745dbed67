package profile

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/moatsec/moat/pkg/gitconfig"
	"github.com/moatsec/moat/pkg/smallfile"
)

// gitWorkspace returns the write roots and protected paths the workspace's
// own repository needs.
//
// With a .git directory (or none yet), .git/config and .git/hooks are
// protected, even missing. Where .git is a file — a linked worktree or a
// submodule checkout — the file itself is protected, and the git
// directories it leads to become writable (commits write their objects,
// refs and index there) with their code-running files protected: the
// worktree's own git directory and the common one, or the submodule's
// directory under the superproject's .git/modules. Only a git directory
// that names this checkout back (a worktree's "gitdir" file, a submodule's
// core.worktree) and belongs to the workspace's owner counts: a .git file
// that points anywhere else widens nothing.
func gitWorkspace(ws string) (write, deny []string) {
	dotgit := filepath.Join(ws, ".git")
	fi, err := os.Lstat(dotgit)
	if err != nil || fi.IsDir() {
		return nil, []string{filepath.Join(dotgit, "config"), filepath.Join(dotgit, "hooks")}
	}
	deny = []string{dotgit}
	if !fi.Mode().IsRegular() {
		return nil, deny
	}
	gd := pointer(dotgit, "gitdir:")
	if gd == "" || within(gd, ws) || !sameOwner(gd, ws) || !isGitDir(gd) {
		return nil, deny // inside: writable already, and the sandbox protects it
	}
	if back := pointer(filepath.Join(gd, "gitdir"), ""); back == dotgit {
		// A linked worktree: gd is <common>/worktrees/<name>.
		common := pointer(filepath.Join(gd, "commondir"), "")
		if common == "" || filepath.Dir(filepath.Dir(gd)) != common || filepath.Base(filepath.Dir(gd)) != "worktrees" || !sameOwner(common, ws) {
			return nil, deny
		}
		return []string{gd, common}, append(append(deny, surfaces(gd)...), surfaces(common)...)
	}
	if worktreeOf(gd) == ws {
		return []string{gd}, append(deny, surfaces(gd)...)
	}
	return nil, deny
}

// surfaces are the files of a git directory through which git runs
// programs or reads another directory's: config and hooks always (missing
// ones get a placeholder), the others when they exist (a placeholder
// commondir would stop git).
func surfaces(gd string) []string {
	out := []string{filepath.Join(gd, "config"), filepath.Join(gd, "hooks")}
	for _, rel := range []string{"config.worktree", "commondir", "info", "objects/info/alternates"} {
		if _, err := os.Lstat(filepath.Join(gd, rel)); err == nil {
			out = append(out, filepath.Join(gd, rel))
		}
	}
	return out
}

// pointer reads a one-line file naming a path (after prefix, when given),
// relative to the file's directory, and returns it absolute with symlinks
// resolved; "" when it is anything else.
func pointer(file, prefix string) string {
	data, err := smallfile.Read(file, 4096)
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(string(data), "\n")
	line, ok := strings.CutPrefix(line, prefix)
	if !ok {
		return ""
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return ""
	}
	if !filepath.IsAbs(line) {
		line = filepath.Join(filepath.Dir(file), line)
	}
	real, err := filepath.EvalSymlinks(line)
	if err != nil {
		return ""
	}
	return real
}

// maxGitConfig bounds the git configuration read for core.worktree; one
// larger, or not a regular file, names none (a run may leave either).
const maxGitConfig = 1 << 20

// worktreeOf is a git directory's core.worktree, absolute; "" when unset.
func worktreeOf(gd string) string {
	data, err := smallfile.Read(filepath.Join(gd, "config"), maxGitConfig)
	if err != nil {
		return ""
	}
	entries, err := gitconfig.Parse(data)
	if err != nil {
		return ""
	}
	wt := ""
	for _, e := range entries {
		if e.Section == "core" && e.Subsection == "" && e.Name == "worktree" {
			wt = e.Value
		}
	}
	if wt == "" {
		return ""
	}
	if !filepath.IsAbs(wt) {
		wt = filepath.Join(gd, wt)
	}
	real, err := filepath.EvalSymlinks(wt)
	if err != nil {
		return ""
	}
	return real
}

// isGitDir reports whether dir looks like a git directory to git: HEAD, and
// objects unless a commondir supplies them.
func isGitDir(dir string) bool {
	if fi, err := os.Stat(filepath.Join(dir, "HEAD")); err != nil || !fi.Mode().IsRegular() {
		return false
	}
	if _, err := os.Stat(filepath.Join(dir, "commondir")); err == nil {
		return true
	}
	fi, err := os.Stat(filepath.Join(dir, "objects"))
	return err == nil && fi.IsDir()
}

func sameOwner(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	if err1 != nil || err2 != nil {
		return false
	}
	ua, ok1 := ownerUID(fa)
	ub, ok2 := ownerUID(fb)
	return ok1 && ok2 && ua == ub
}
