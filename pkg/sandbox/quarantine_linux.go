//go:build linux

package sandbox

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"golang.org/x/sys/unix"
)

// A finding is a file a run left that could make a program run later,
// outside any sandbox, or that a write_deny pattern names.
type finding struct {
	path, reason string
}

// quarantineDir is where what a run left is moved: spec's, or
// MOAT_HOME/quarantine; "" when there is none (what is found is deleted).
func (s *Spec) quarantineDir() string {
	if s.Quarantine != "" {
		return s.Quarantine
	}
	h, err := home.FromEnv()
	if err != nil {
		return ""
	}
	return h.QuarantineDir()
}

// quarantine moves each found file into a fresh directory under dir,
// keeping its path (dir/<time>-<n>/<path>). A file that cannot be moved is
// deleted: it must not stay where git finds it. Each file is reached from
// the root it was found under without following any symbolic link, so a run
// still going on beside cannot turn a parent into a link and have sandboxd
// move or delete a file elsewhere.
func quarantine(dir string, roots []string, found []finding) []wire.Quarantined {
	if len(found) == 0 {
		return nil
	}
	var run string
	if err := os.MkdirAll(dir, 0o700); dir != "" && err == nil {
		run, _ = os.MkdirTemp(dir, time.Now().UTC().Format("20060102T150405")+"-")
	}
	out := make([]wire.Quarantined, 0, len(found))
	for _, f := range found {
		q := wire.Quarantined{Path: f.path, Reason: f.reason}
		parent, err := openBeneath(filepath.Dir(f.path), roots)
		if err != nil {
			q.Reason += fmt.Sprintf(" (NOT REMOVED: %v: remove it by hand before git or another tool on the host reads it)", err)
			out = append(out, q)
			continue
		}
		name := filepath.Base(f.path)
		if run == "" {
			err = fmt.Errorf("quarantine %q cannot be made", dir)
		} else {
			dest := filepath.Join(run, strings.TrimPrefix(f.path, "/"))
			if err = moveOut(parent, name, dest); err == nil {
				q.MovedTo = dest
			}
		}
		if err != nil {
			if rmErr := removeAt(parent, name, 0); rmErr != nil && rmErr != unix.ENOENT {
				q.Reason += fmt.Sprintf(" (NOT REMOVED: %v; %v: remove it by hand before git or another tool on the host reads it)", err, rmErr)
			} else {
				q.Reason += fmt.Sprintf(" (deleted, not kept: %v)", err)
			}
		}
		unix.Close(parent)
		out = append(out, q)
	}
	return out
}

// openBeneath opens dir, which lies inside one of roots, with no symbolic
// link followed below the root.
func openBeneath(dir string, roots []string) (int, error) {
	for _, r := range roots {
		rel, ok := strings.CutPrefix(dir, r)
		if !ok || (rel != "" && rel[0] != '/') {
			continue
		}
		rfd, err := unix.Open(r, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			return -1, fmt.Errorf("open %s: %w", r, err)
		}
		defer unix.Close(rfd)
		rel = strings.TrimPrefix(rel, "/")
		if rel == "" {
			rel = "."
		}
		fd, err := unix.Openat2(rfd, rel, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS})
		if err != nil {
			return -1, fmt.Errorf("open %s without following links: %w", dir, err)
		}
		return fd, nil
	}
	return -1, fmt.Errorf("%s is outside the checked directories", dir)
}

// moveOut renames parent/name to dst, copying and removing across
// filesystems.
func moveOut(parent int, name, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	err := unix.Renameat(parent, name, unix.AT_FDCWD, dst)
	if err != unix.EXDEV {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(parent, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		buf := make([]byte, 4096)
		n, err := unix.Readlinkat(parent, name, buf)
		if err != nil {
			return err
		}
		if err := os.Symlink(string(buf[:n]), dst); err != nil {
			return err
		}
	case unix.S_IFREG:
		fd, err := unix.Openat(parent, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return err
		}
		in := os.NewFile(uintptr(fd), name)
		err = copyTo(in, dst)
		in.Close()
		if err != nil {
			return err
		}
	default:
		return fmt.Errorf("%s is neither a file nor a link", name)
	}
	return unix.Unlinkat(parent, name, 0)
}

// maxRemoveDepth bounds how deep removeAt descends (each level holds a
// descriptor open).
const maxRemoveDepth = 64

// removeAt deletes parent/name, a directory with everything in it (the
// files of each level before its directories), following no link.
func removeAt(parent int, name string, depth int) error {
	err := unix.Unlinkat(parent, name, 0)
	if err != unix.EISDIR {
		return err
	}
	if depth >= maxRemoveDepth {
		return fmt.Errorf("%s: more than %d directories deep", name, maxRemoveDepth)
	}
	fd, err := unix.Openat(parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	dir := os.NewFile(uintptr(fd), name)
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return err
	}
	var subdirs []string
	for _, n := range names {
		switch err := unix.Unlinkat(fd, n, 0); err {
		case nil, unix.ENOENT:
		case unix.EISDIR:
			subdirs = append(subdirs, n)
		default:
			return err
		}
	}
	for _, n := range subdirs {
		if err := removeAt(fd, n, depth+1); err != nil && err != unix.ENOENT {
			return err
		}
	}
	return unix.Unlinkat(parent, name, unix.AT_REMOVEDIR)
}

func copyTo(in io.Reader, dst string) error {
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
