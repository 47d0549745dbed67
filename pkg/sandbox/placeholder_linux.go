//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/moatsec/moat/pkg/wire"
	"golang.org/x/sys/unix"
)

// A protected path that does not exist yet (.envrc, .git/hooks, .vscode/)
// cannot be mounted read-only, and the command could create it — a hook git
// later runs outside any sandbox. So sandboxd creates it as an empty
// directory for the run (invisible to git, and no file can be written where
// a directory stands), the helper mounts it read-only, and sandboxd removes
// it afterwards.
//
// Runs in the same workspace may overlap, and removing a directory another
// run has mounted would lift that run's protection, so each run holds a
// shared flock on the placeholder while it runs, and a placeholder is
// removed only by whoever can take it exclusively.

// placeholders creates the missing protected paths inside writable roots.
func placeholders(p *wire.Profile) ([]string, error) {
	var made []string
	for _, path := range p.FS.WriteDeny {
		if !insideAny(path, p.FS.Write) || path == p.Workspace {
			continue
		}
		for attempt := 0; ; attempt++ {
			got, err := holdMissing(path, p.Workspace, p.FS.Write)
			made = append(made, got...)
			if err == nil {
				break
			}
			// Another run removed its placeholder under this one's: the
			// next attempt sees the new state.
			if !errors.Is(err, errVanished) || attempt == 20 {
				return made, err
			}
		}
	}
	return made, nil
}

// errVanished is a placeholder, or the directory to make one in, that
// another run removed meanwhile.
var errVanished = errors.New("removed meanwhile by another run")

// holdMissing holds path's placeholder, making it if path is missing, and
// returns what it holds.
func holdMissing(path, ws string, roots []string) ([]string, error) {
	if fi, err := os.Lstat(path); err == nil {
		// Another run's placeholder: hold it too, or that run could remove
		// it from under this one.
		if !isPlaceholder(fi) {
			return nil, nil
		}
		ph, err := lockPlaceholder(path)
		if err != nil {
			return nil, err
		}
		held.add(ph)
		return []string{path}, nil
	}
	// Create the first missing component: protecting it protects
	// everything below (.git for .git/hooks when there is no .git).
	top := path
	for parent := filepath.Dir(top); parent != top; parent = filepath.Dir(top) {
		if _, err := os.Lstat(parent); err == nil {
			break
		}
		top = parent
	}
	if !insideAny(top, roots) {
		return nil, nil
	}
	var made []string
	// Making it inside another run's placeholder (.git/config in .git):
	// hold that one too while this run lasts, so it is not removed between
	// here and the mkdir, nor while this run's placeholder is in it.
	if parent := filepath.Dir(top); parent != ws && insideAny(parent, roots) && placeholderMode(parent) {
		ph, err := lockPlaceholder(parent)
		if err != nil {
			return nil, err
		}
		held.add(ph)
		made = append(made, parent)
	}
	ph, err := lockPlaceholder(top)
	if err != nil {
		return made, err
	}
	held.add(ph)
	return append(made, top), nil
}

// placeholderMode reports whether dir is a directory of a placeholder's
// mode, empty or not.
func placeholderMode(dir string) bool {
	fi, err := os.Lstat(dir)
	return err == nil && fi.IsDir() && fi.Mode().Perm() == 0o555
}

// lockPlaceholder creates dir if needed and holds a shared lock on it,
// retrying if another run removed it in between.
func lockPlaceholder(dir string) (placeholder, error) {
	for attempt := 0; attempt < 10; attempt++ {
		if err := os.Mkdir(dir, 0o555); err != nil && !errors.Is(err, os.ErrExist) {
			if errors.Is(err, os.ErrNotExist) {
				return placeholder{}, fmt.Errorf("placeholder %s: its parent was %w", dir, errVanished)
			}
			return placeholder{}, fmt.Errorf("placeholder %s: %v", dir, err)
		}
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			continue
		}
		if err := unix.Flock(fd, unix.LOCK_SH); err != nil {
			unix.Close(fd)
			return placeholder{}, fmt.Errorf("placeholder %s: %v", dir, err)
		}
		var a, b unix.Stat_t
		if unix.Fstat(fd, &a) == nil && unix.Lstat(dir, &b) == nil && a.Ino == b.Ino && a.Dev == b.Dev {
			return placeholder{path: dir, fd: fd}, nil
		}
		unix.Close(fd) // removed under us: try again
	}
	return placeholder{}, fmt.Errorf("placeholder %s: %w", dir, errVanished)
}

// removePlaceholders releases this run's placeholders and removes those no
// other run holds. A run may have made its placeholder inside another run's
// (.git/config inside .git): when the outer one's run ends first it cannot
// go, so whoever empties it removes it — a placeholder is recognised as an
// empty directory of mode 0555, which no real .git or .vscode is.
func removePlaceholders(paths []string) {
	for i := len(paths) - 1; i >= 0; i-- {
		ph, ok := held.take(paths[i])
		if !ok {
			continue
		}
		if unix.Flock(ph.fd, unix.LOCK_EX|unix.LOCK_NB) == nil {
			if unix.Rmdir(ph.path) == nil {
				removeEmptyParents(filepath.Dir(ph.path))
			}
		}
		unix.Close(ph.fd)
	}
}

// removeEmptyParents removes dir and its parents while they are empty,
// unheld placeholders.
func removeEmptyParents(dir string) {
	for {
		var st unix.Stat_t
		if unix.Lstat(dir, &st) != nil || st.Mode&0o7777 != 0o555 || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return
		}
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			return
		}
		removed := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) == nil && unix.Rmdir(dir) == nil
		unix.Close(fd)
		if !removed {
			return
		}
		dir = filepath.Dir(dir)
	}
}

// isPlaceholder recognises a placeholder: an empty directory of mode 0555.
func isPlaceholder(fi os.FileInfo) bool {
	if !fi.IsDir() || fi.Mode().Perm() != 0o555 {
		return false
	}
	return fi.Sys().(*syscall.Stat_t).Nlink == 2
}

func insideAny(p string, roots []string) bool {
	for _, r := range roots {
		if p == r || r == "/" || strings.HasPrefix(p, r+"/") {
			return true
		}
	}
	return false
}
