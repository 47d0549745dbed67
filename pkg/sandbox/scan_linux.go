//go:build linux

package sandbox

import (
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moatsec/moat/pkg/gitconfig"
	"github.com/moatsec/moat/pkg/glob"
	"golang.org/x/sys/unix"
)

// maxConfig bounds a configuration file the check reads; a larger one is a
// finding itself.
const maxConfig = 1 << 20

// check runs after the command ended: it refreshes the trees and lists
// what this run's mounts did not hold and could run a program — in every
// git directory (a directory holding HEAD, or a .git directory) the
// configuration (core.fsmonitor, core.hooksPath, core.sshCommand, filter,
// diff and merge drivers, ! aliases, include, … see package gitconfig),
// hooks with content, a commondir leading out of the trees; every .git file
// or link leading out of them; in the directories that changed during the
// run, new files a write_deny pattern matches (every file of a directory
// that was not there before: one renamed into place keeps its files'
// times); and every match of the guard patterns its mounts did not hold.
// It ends the watch.
func (w *watch) check() []finding {
	c := &checker{w: w, seen: map[string]bool{}}
	guard := w.guard
	for _, t := range w.trees {
		marks := t.refresh()
		t.release(w)
		// A repository or worktree the run made (git init, a .git file in
		// a directory): nothing there was held, and a tool on the host may
		// take it for a repository's top.
		var made []string
		for dir, d := range marks {
			if d.dotgit != 0 && w.prof != nil && !w.tops[dir] && !c.belowHeld(dir) {
				made = append(made, dir)
			}
		}
		slices.Sort(made)
		for _, dir := range made {
			guard = append(guard, w.prof.Guards(dir)...)
		}
		// A directory that cannot be listed now could hide a git directory
		// the run planted (a run whose user is sandboxd's can chmod 000 its
		// own directory): it is taken out like what it might hide.
		dirs, why := t.unlisted()
		for _, dir := range dirs {
			if !c.belowHeld(dir) {
				c.add(dir, "a directory sandboxd cannot list after the run (%v), which could hide a git directory", why[dir])
			}
		}
		for dir, d := range marks {
			if c.belowHeld(dir) {
				continue // under a read-only bind: not this run's doing
			}
			if d.head {
				c.gitDir(dir)
			}
			switch d.dotgit {
			case 'd':
				c.gitDir(dir + "/.git")
			case 'f':
				c.dotGit(dir + "/.git")
			}
		}
	}
	c.guard = guard
	if len(w.globs) > 0 || len(guard) > 0 {
		w.mu.Lock()
		dirs := make(map[string]bool, len(w.changed))
		maps.Copy(dirs, w.changed)
		w.mu.Unlock()
		for d, fresh := range dirs {
			if !c.belowHeld(d) {
				c.patterns(d, fresh)
			}
		}
	}
	if len(guard) > 0 {
		c.unheld()
	}
	return c.found
}

type checker struct {
	w     *watch
	seen  map[string]bool
	found []finding
	at    map[string]bool // the paths found
	guard []string        // the watch's guard patterns and those of tops the run made
}

func (c *checker) add(path, format string, args ...any) {
	if c.at[path] {
		return
	}
	if c.at == nil {
		c.at = map[string]bool{}
	}
	c.at[path] = true
	c.found = append(c.found, finding{path: path, reason: fmt.Sprintf(format, args...)})
}

// gitDir checks one git directory's surfaces that this run's mounts did
// not hold.
func (c *checker) gitDir(gd string) {
	if c.seen[gd] {
		return
	}
	c.seen[gd] = true
	for _, name := range []string{"config", "config.worktree"} {
		p := gd + "/" + name
		fi, err := c.fresh(p)
		switch {
		case err != nil:
		case fi.Mode()&os.ModeSymlink != 0:
			c.add(p, "a symbolic link where git reads its configuration")
		case !fi.Mode().IsRegular():
		case fi.Size() > maxConfig:
			c.add(p, "a configuration file over %d bytes", maxConfig)
		default:
			data, err := c.read(p, maxConfig)
			if err != nil {
				c.add(p, "a configuration file that cannot be read: %v", err)
			} else if why := gitconfig.Check(data); len(why) > 0 {
				c.add(p, "%s", strings.Join(why, "; "))
			}
		}
	}
	if _, err := c.fresh(gd + "/commondir"); err == nil {
		c.pointer(gd+"/commondir", "", "commondir")
	}
	hooks := gd + "/hooks"
	fi, err := c.fresh(hooks)
	switch {
	case err != nil:
	case fi.Mode()&os.ModeSymlink != 0:
		c.add(hooks, "a symbolic link where git looks for hooks")
	case fi.IsDir():
		c.entries(hooks, func(name string, st *unix.Stat_t) {
			mode := st.Mode & unix.S_IFMT
			if strings.HasSuffix(name, ".sample") || mode == unix.S_IFDIR || (mode == unix.S_IFREG && st.Size == 0) {
				return // git runs none of these
			}
			c.add(hooks+"/"+name, "a git hook")
		})
	}
}

// dotGit checks a .git file or link this run's mounts did not hold.
func (c *checker) dotGit(p string) {
	fi, err := c.fresh(p)
	switch {
	case err != nil:
	case fi.Mode()&os.ModeSymlink != 0:
		target, err := filepath.EvalSymlinks(p)
		if err != nil || !insideAny(target, c.w.roots) {
			c.add(p, "a .git link leading out of the workspace")
			return
		}
		c.gitDir(target)
	case fi.Mode().IsRegular():
		c.pointer(p, "gitdir:", ".git file")
	}
}

// pointer checks a file naming a git directory: one out of the trees is a
// finding, one inside them is checked in turn.
func (c *checker) pointer(p, prefix, what string) {
	data, err := c.read(p, 4096)
	if err != nil || len(data) > 4096 {
		c.add(p, "a %s that cannot be read", what)
		return
	}
	line, _, _ := strings.Cut(string(data), "\n")
	line, ok := strings.CutPrefix(line, prefix)
	line = strings.TrimSpace(line)
	if !ok || line == "" {
		return // git refuses it
	}
	if !filepath.IsAbs(line) {
		line = filepath.Join(filepath.Dir(p), line)
	}
	target, err := filepath.EvalSymlinks(line)
	if err != nil {
		target = filepath.Clean(line)
	}
	if !insideAny(target, c.w.roots) {
		c.add(p, "a %s leading out of the workspace, to %s", what, target)
		return
	}
	c.gitDir(target)
}

// belowHeld reports whether p lies strictly below a path this run's mounts
// held read-only (MOAT_HOME, a protected directory).
func (c *checker) belowHeld(p string) bool {
	for d := filepath.Dir(p); d != p && d != "/"; p, d = d, filepath.Dir(d) {
		if c.w.holds(d) {
			return true
		}
	}
	return false
}

// fresh is the lstat of a surface this run's mounts did not hold.
func (c *checker) fresh(p string) (os.FileInfo, error) {
	if c.w.holds(p) {
		return nil, os.ErrExist
	}
	f, err := c.open(p, unix.O_PATH)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Stat()
}

// open opens p, which lies under one of the watched roots, following no
// symbolic link below the root, p itself included: a run still going on
// beside cannot turn a parent into a link and have sandboxd read a host
// file in its place.
func (c *checker) open(p string, flags int) (*os.File, error) {
	if slices.Contains(c.w.roots, p) {
		// A root itself (the workspace, listed for the patterns): sandboxd
		// resolved it before the run, as openBeneath opens it.
		fd, err := unix.Open(p, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: p, Err: err}
		}
		return os.NewFile(uintptr(fd), p), nil
	}
	dir, err := openBeneath(filepath.Dir(p), c.w.roots)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dir)
	fd, err := unix.Openat(dir, filepath.Base(p), flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return os.NewFile(uintptr(fd), p), nil
}

// read reads at most max+1 bytes of the regular file p.
func (c *checker) read(p string, max int64) ([]byte, error) {
	f, err := c.open(p, unix.O_RDONLY|unix.O_NONBLOCK)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max+1))
}

// entries calls fn with each entry of the directory dir and its lstat.
func (c *checker) entries(dir string, fn func(name string, st *unix.Stat_t)) {
	f, err := c.open(dir, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return
	}
	defer f.Close()
	names, _ := f.Readdirnames(-1)
	for _, name := range names {
		var st unix.Stat_t
		if unix.Fstatat(int(f.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
			fn(name, &st)
		}
	}
}

// patterns lists the entries of dir created or changed since the run began
// (every entry, when dir is fresh) that a write_deny pattern matches, and
// the links it made where a pattern looks for a directory.
func (c *checker) patterns(dir string, fresh bool) {
	since := c.w.start.Add(-settle).UnixNano()
	if fresh {
		since = 0
	}
	c.entries(dir, func(name string, st *unix.Stat_t) {
		p := dir + "/" + name
		if st.Ctim.Nano() < since || c.w.holds(p) {
			return
		}
		for _, g := range c.w.globs {
			if glob.Match(g, p) {
				c.add(p, "matches the write_deny pattern %s", g)
				return
			}
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			return
		}
		for _, l := range [][]string{c.w.globs, c.guard} {
			for _, g := range l {
				if strings.HasPrefix(g, p+"/") {
					c.add(p, "a link where the write_deny pattern %s looks", g)
					return
				}
			}
		}
	})
}

// unheld finds every match of the guard patterns that this run's mounts
// did not hold: what the run made there, however it came (written, linked,
// renamed into place with old times). A link to nothing is left (the host
// reads nothing there), and so is one leading out of the writable roots
// (the run wrote nothing there); the entry itself is what moves, never a
// file it leads to.
func (c *checker) unheld() {
	var writable []string
	if c.w.prof != nil {
		writable = c.w.prof.FS.Write
	}
	for _, m := range matches(c.guard) {
		switch {
		case m.target == "", c.w.holds(m.entry), c.w.holds(m.target):
		case !insideAny(m.target, writable):
		case c.belowHeld(m.entry), !insideAny(m.entry, c.w.roots):
		default:
			c.add(m.entry, "matches the write_deny pattern %s", m.pattern)
		}
	}
}
