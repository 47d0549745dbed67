//go:build linux

package sandbox

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moatsec/moat/pkg/gitconfig"
	"github.com/moatsec/moat/pkg/smallfile"
	"github.com/moatsec/moat/pkg/wire"
	"golang.org/x/sys/unix"
)

// A watch is one run's view of its writable trees. Before the run it lists
// every git directory in them, whose code-running files the mounts then
// hold read-only; after the run it finds what no mount could hold — git
// directories, .git files and hooks that appeared during the run, files
// matching a write_deny pattern — and what of it could make a program run
// (see check). Runs going on side by side in a workspace each check
// everything their own mounts did not hold.
type watch struct {
	start time.Time
	roots []string
	trees []*tree
	globs []string          // the write_deny patterns, checked where a directory changed
	guard []string          // the patterns checked by what matches (guardPatterns)
	prof  *wire.Profile     // what guard and the writable roots came from
	tops  map[string]bool   // the repositories' tops guarded from the start
	held  map[string]fileID // the paths this run's mounts held read-only, and what they were

	mu      sync.Mutex
	changed map[string]bool // directories changed during the run: fresh ones true (see changedDir)
}

// gitSurfaces are the files of a git directory through which git runs a
// program or reads another directory's configuration.
var gitSurfaces = []string{"config", "config.worktree", "commondir", "hooks", "info", "objects/info/alternates"}

// watchRun starts watching p's writable trees and returns the paths to
// protect besides p's own: the code-running files of every git directory in
// them, the .git files, hook directories the configurations name, and what
// the guard patterns match now (held where it leads).
func watchRun(p *wire.Profile) (*watch, []string) {
	w := &watch{start: time.Now(), globs: p.FS.WriteDenyGlobs, changed: map[string]bool{}}
	w.roots = walkRoots(p)
	var protect []string
	tops := []string{p.Workspace} // the workspace, and each repository's top in it
	for _, r := range w.roots {
		t := treeFor(r, w)
		w.trees = append(w.trees, t)
		for dir, d := range t.refresh() {
			protect = append(protect, marked(dir, d, w.roots)...)
			if d.dotgit != 0 && dir != p.Workspace {
				tops = append(tops, dir)
			}
		}
	}
	if len(w.roots) > 0 {
		slices.Sort(tops[1:]) // the same patterns in the same order, run after run
		w.guard, w.prof, w.tops = guardPatterns(p, tops), p, map[string]bool{}
		for _, t := range tops {
			w.tops[t] = true
		}
		protect = append(protect, holds(matches(w.guard), p.FS.Write)...)
	}
	w.mu.Lock()
	clear(w.changed) // what this run's first look found is what it started with
	w.mu.Unlock()
	slices.Sort(protect)
	return w, slices.Compact(protect)
}

// unlisted is a directory of the run's trees that the first look could
// not list, and why; "" when there is none.
func (w *watch) unlisted() (string, error) {
	for _, t := range w.trees {
		if dirs, why := t.unlisted(); len(dirs) > 0 {
			return dirs[0], why[dirs[0]]
		}
	}
	return "", nil
}

// walkRoots are the writable workspace and the writable roots that are git
// directories (a worktree's or a submodule's, outside the workspace).
// Other extra write roots (caches) are not walked.
func walkRoots(p *wire.Profile) []string {
	var roots []string
	for _, r := range p.FS.Write {
		if r == "/" {
			return nil // trusted: nothing is held, nothing to check
		}
		if r == p.Workspace || isGitDir(r) {
			roots = append(roots, r)
		}
	}
	var out []string
	for _, r := range roots {
		if !insideAny(r, slices.DeleteFunc(slices.Clone(roots), func(x string) bool { return x == r })) {
			out = append(out, r)
		}
	}
	return out
}

// marked lists what to protect for one marked directory.
func marked(dir string, d dirState, roots []string) []string {
	var out []string
	if d.head {
		out = append(out, existingSurfaces(dir, roots)...)
	}
	switch d.dotgit {
	case 'd':
		out = append(out, existingSurfaces(dir+"/.git", roots)...)
	case 'f':
		out = append(out, dir+"/.git")
	}
	return out
}

func existingSurfaces(gd string, roots []string) []string {
	var out []string
	for _, s := range gitSurfaces {
		if _, err := os.Lstat(gd + "/" + s); err == nil {
			out = append(out, gd+"/"+s)
		}
	}
	if hp := hooksPath(gd); hp != "" && insideAny(hp, roots) && !slices.ContainsFunc(roots, func(r string) bool { return insideAny(r, []string{hp}) }) {
		out = append(out, hp) // missing: a placeholder holds it
	}
	return out
}

// hooksPath is the hook directory gd's configuration names, absolute. A
// config that is not a regular file, or over maxConfig, names none: a run
// may leave a FIFO or a link to a device there.
func hooksPath(gd string) string {
	data, err := smallfile.Read(gd+"/config", maxConfig)
	if err != nil {
		return ""
	}
	entries, _ := gitconfig.Parse(data)
	hp := ""
	for _, e := range entries {
		if e.Section == "core" && e.Subsection == "" && e.Name == "hookspath" {
			hp = e.Value
		}
	}
	if hp == "" || strings.HasPrefix(hp, "~") {
		return ""
	}
	if !filepath.IsAbs(hp) {
		base := gd // a bare repository runs hooks from itself
		if filepath.Base(gd) == ".git" {
			base = filepath.Dir(gd) // others from the top of the worktree
		}
		hp = filepath.Join(base, hp)
	}
	return filepath.Clean(hp)
}

// hold records what the mounts hold read-only for this run.
func (w *watch) hold(lists ...[]string) {
	w.held = map[string]fileID{}
	for _, l := range lists {
		for _, p := range l {
			var st unix.Stat_t
			if unix.Lstat(p, &st) == nil {
				w.held[p] = fileID{st.Dev, st.Ino}
			}
		}
	}
}

// fileID tells one file from another that took its name.
type fileID struct{ dev, ino uint64 }

// holds reports whether p is what this run's mounts held read-only: the
// same path and still the same file. Another run beside can move what this
// one held aside (its quarantine, in the host's namespace, where this
// run's mounts are not), and this run can then make a new file by that
// name, which nothing held.
func (w *watch) holds(p string) bool {
	id, ok := w.held[p]
	if !ok {
		return false
	}
	var st unix.Stat_t
	return unix.Lstat(p, &st) == nil && (fileID{st.Dev, st.Ino}) == id
}

func (w *watch) addChanged(dirs []changedDir) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, d := range dirs {
		w.changed[d.path] = w.changed[d.path] || d.fresh
	}
}

// isGitDir reports whether dir holds a HEAD, as every git directory does.
func isGitDir(dir string) bool {
	var st unix.Stat_t
	return unix.Lstat(dir+"/HEAD", &st) == nil
}
