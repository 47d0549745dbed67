//go:build linux

package sandbox

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
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
// keeping its path (dir/<time>-<n>/<path>). Each is first renamed aside in
// its own directory (.moat-quarantined-<token>, a name no tool reads), which
// takes it out of where the host reads it at once and never crosses a
// filesystem; what cannot then be moved to the quarantine (a directory, or
// a file over maxCopy, on another filesystem) stays aside, and is reported
// there. Nothing is deleted. Each file is reached from the root it was
// found under, and each destination from the quarantine's own directory,
// without following any symbolic link, so a run still going on beside
// cannot turn a parent into a link and have sandboxd move a file elsewhere.
func quarantine(dir string, roots []string, found []finding) []wire.Quarantined {
	if len(found) == 0 {
		return nil
	}
	run, runFd := "", -1
	if err := os.MkdirAll(dir, 0o700); dir != "" && err == nil {
		run, _ = os.MkdirTemp(dir, time.Now().UTC().Format("20060102T150405")+"-")
	}
	if run != "" {
		if fd, err := unix.Open(run, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err == nil {
			runFd = fd
			defer unix.Close(runFd)
		}
	}
	// By path, so a directory goes before what it holds, which then goes
	// with it.
	found = slices.Clone(found)
	slices.SortFunc(found, func(a, b finding) int { return strings.Compare(a.path, b.path) })
	out := make([]wire.Quarantined, 0, len(found))
	for _, f := range found {
		if i := slices.IndexFunc(out, func(q wire.Quarantined) bool {
			return q.MovedTo != "" && strings.HasPrefix(f.path, q.Path+"/")
		}); i >= 0 {
			out = append(out, wire.Quarantined{Path: f.path, MovedTo: out[i].MovedTo + f.path[len(out[i].Path):],
				Reason: f.reason + " (moved with " + out[i].Path + ")"})
			continue
		}
		out = append(out, quarantineOne(f, roots, run, runFd))
	}
	return out
}

func quarantineOne(f finding, roots []string, run string, runFd int) wire.Quarantined {
	q := wire.Quarantined{Path: f.path, Reason: f.reason}
	parent, err := openBeneath(filepath.Dir(f.path), roots)
	if err == nil {
		defer unix.Close(parent)
	}
	aside := ".moat-quarantined-" + wire.NewToken()[:16]
	if err == nil {
		err = renameNoReplace(parent, filepath.Base(f.path), parent, aside)
	}
	if err != nil {
		q.Reason += fmt.Sprintf(" (NOT REMOVED: %v: remove it by hand before git or another tool on the host reads it)", err)
		return q
	}
	asidePath := filepath.Join(filepath.Dir(f.path), aside)
	if runFd < 0 {
		q.MovedTo = asidePath
		q.Reason += " (left in its directory under that name: no quarantine directory could be made)"
		return q
	}
	rel := strings.TrimPrefix(f.path, "/")
	into, err := destDir(runFd, filepath.Dir(rel))
	if err == nil {
		err = moveOut(parent, aside, into, filepath.Base(rel))
		unix.Close(into)
	}
	if err != nil {
		q.MovedTo = asidePath
		q.Reason += fmt.Sprintf(" (left in its directory under that name: %v)", err)
		return q
	}
	q.MovedTo = filepath.Join(run, rel)
	return q
}

// destDir opens, making what is missing, the directory rel below the
// quarantine's directory run, following no link.
func destDir(run int, rel string) (int, error) {
	fd, err := unix.Dup(run)
	if err != nil {
		return -1, err
	}
	for _, c := range strings.Split(rel, "/") {
		if c == "" || c == "." {
			continue
		}
		if err := unix.Mkdirat(fd, c, 0o700); err != nil && err != unix.EEXIST {
			unix.Close(fd)
			return -1, err
		}
		next, err := unix.Openat2(fd, c, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS})
		unix.Close(fd)
		if err != nil {
			return -1, fmt.Errorf("quarantine directory %s: %w", c, err)
		}
		fd = next
	}
	return fd, nil
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

// maxCopy bounds a file copied to a quarantine on another filesystem (a
// sparse file could be any size); a larger one stays aside.
const maxCopy = 1 << 20

// moveOut renames parent/name to into/base, copying a file or a link across
// filesystems; a directory, or a file over maxCopy, it leaves.
func moveOut(parent int, name string, into int, base string) error {
	err := renameNoReplace(parent, name, into, base)
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
		if err := unix.Symlinkat(string(buf[:n]), into, base); err != nil {
			return err
		}
	case unix.S_IFREG:
		if st.Size > maxCopy {
			return fmt.Errorf("the quarantine is on another filesystem, and the file is over %d bytes", maxCopy)
		}
		if err := copyAt(parent, name, into, base); err != nil {
			return err
		}
	default:
		return fmt.Errorf("the quarantine is on another filesystem, where a directory is not copied")
	}
	return unix.Unlinkat(parent, name, 0)
}

// renameNoReplace renames, never over what is at the destination.
func renameNoReplace(from int, name string, to int, base string) error {
	err := unix.Renameat2(from, name, to, base, unix.RENAME_NOREPLACE)
	if err != unix.EINVAL {
		return err
	}
	// A filesystem without RENAME_NOREPLACE: look, then rename.
	var st unix.Stat_t
	if unix.Fstatat(to, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
		return unix.EEXIST
	}
	return unix.Renameat(from, name, to, base)
}

// copyAt copies the regular file parent/name to a new into/base, at most
// maxCopy bytes; a failed copy leaves nothing behind.
func copyAt(parent int, name string, into int, base string) error {
	ifd, err := unix.Openat(parent, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	in := os.NewFile(uintptr(ifd), name)
	defer in.Close()
	ofd, err := unix.Openat(into, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	out := os.NewFile(uintptr(ofd), base)
	n, err := io.Copy(out, io.LimitReader(in, maxCopy+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > maxCopy {
		err = fmt.Errorf("the file grew over %d bytes while copied", maxCopy)
	}
	if err != nil {
		unix.Unlinkat(into, base, 0)
	}
	return err
}
