//go:build linux

package inside

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// devices are the host device nodes a sandbox's /dev offers.
var devices = []string{"null", "zero", "full", "random", "urandom", "tty"}

// buildMounts shapes the helper's private mount namespace (see the package
// doc for the order and why). It returns the mechanisms applied.
func buildMounts(cfg *Config) ([]string, error) {
	p := cfg.Profile
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return nil, fmt.Errorf("mount namespace: make / private: %v", err)
	}
	// Paths under /tmp that must stay visible once /tmp is private, and the
	// host's device nodes, are held open before anything covers them.
	keep := underTmp(p.Workspace, cfg.Dir, p.FS.Write)
	keepFDs := map[string]int{}
	for _, path := range keep {
		fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			continue // not there: nothing to keep
		}
		keepFDs[path] = fd
	}
	devFDs := map[string]int{}
	for _, d := range devices {
		fd, err := unix.Open("/dev/"+d, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("minimal /dev: %s: %v", d, err)
		}
		devFDs[d] = fd
	}
	// What the run may read beyond the system is held open now, before
	// anything covers it (see reads_linux.go).
	var reads *readPlan
	if !cfg.Trusted {
		var err error
		if reads, err = planReads(visible(cfg), p.FS.ReadDeny, cfg.UID, cfg.GID); err != nil {
			return nil, err
		}
		defer reads.close()
	}
	var applied []string
	if !cfg.Trusted {
		if err := setattr("/", unix.AT_RECURSIVE, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID, 0); err != nil {
			return nil, fmt.Errorf("make the filesystem read-only (needs mount_setattr, Linux 5.12): %v", err)
		}
		applied = append(applied, "fs:read-only")
	}
	// Reads are confined before /tmp is made private: the covers are
	// staged in a tmpfs on /tmp, which the private one then hides.
	if reads != nil {
		what, err := confineReads(reads)
		if err != nil {
			return nil, err
		}
		applied = append(applied, what)
	}
	if err := privateTmp(cfg, keepFDs); err != nil {
		return nil, err
	}
	applied = append(applied, fmt.Sprintf("tmpfs:/tmp size=%d", cfg.TmpBytes))
	if err := minimalDev(devFDs); err != nil {
		return nil, err
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC|unix.MS_RDONLY, ""); err != nil {
		return nil, fmt.Errorf("fresh /proc: %v", err)
	}
	applied = append(applied, "dev:minimal", "proc:fresh,read-only")
	if !cfg.Trusted {
		n, err := writableRoots(p.FS.Write)
		if err != nil {
			return nil, err
		}
		applied = append(applied, fmt.Sprintf("writable:%d roots", n))
	}
	// Read-denied paths are pinned too: moving a parent away would carry
	// the path out from under its cover, for this run and the next.
	pinned, err := pinAncestors(append(slices.Clone(p.FS.WriteDeny), p.FS.ReadDeny...), p.FS.Write)
	if err != nil {
		return nil, err
	}
	// sandboxd makes placeholders only for confined runs: under trusted a
	// missing protected path says nothing about a vanished one.
	creatable := p.FS.Write
	if cfg.Trusted {
		creatable = nil
	}
	ro, err := readOnly(p.FS.WriteDeny, cfg.Placeholders, creatable, p.Workspace)
	if err != nil {
		return nil, err
	}
	hidden, err := hide(p.FS.ReadDeny)
	if err != nil {
		return nil, err
	}
	return append(applied, fmt.Sprintf("protected:%d paths (%d parents pinned)", ro, pinned), fmt.Sprintf("hidden:%d paths", hidden)), nil
}

// visible lists what a run sees besides the system: its workspace, its
// writable roots and its profile's read set.
func visible(cfg *Config) []string {
	p := cfg.Profile
	out := []string{p.Workspace}
	for _, w := range p.FS.Write {
		if w != "/" {
			out = append(out, w)
		}
	}
	return append(out, p.FS.Read...)
}

func setattr(path string, flags uint, set, clr uint64) error {
	return unix.MountSetattr(unix.AT_FDCWD, path, flags, &unix.MountAttr{Attr_set: set, Attr_clr: clr})
}

// underTmp lists the paths under /tmp that the command must still see.
func underTmp(ws, dir string, write []string) []string {
	var out []string
	for _, p := range append([]string{ws, dir}, write...) {
		if p != "/tmp" && strings.HasPrefix(p, "/tmp/") {
			out = append(out, p)
		}
	}
	return out
}

// privateTmp mounts a fresh size-limited tmpfs on /tmp and binds back the
// paths under it that the command must see (a workspace in /tmp).
func privateTmp(cfg *Config, keep map[string]int) error {
	opts := fmt.Sprintf("size=%d,mode=1777", max(cfg.TmpBytes, 1<<20))
	if err := unix.Mount("tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("private /tmp: %v", err)
	}
	for path, fd := range keep {
		if err := os.MkdirAll(path, 0o755); err != nil {
			return fmt.Errorf("private /tmp: keep %s: %v", path, err)
		}
		src := fmt.Sprintf("/proc/self/fd/%d", fd)
		if err := unix.Mount(src, path, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("private /tmp: keep %s: %v", path, err)
		}
		// Read-only unless it is a writable root (made writable later).
		if !cfg.Trusted {
			if err := setattr(path, unix.AT_RECURSIVE, unix.MOUNT_ATTR_RDONLY, 0); err != nil {
				return fmt.Errorf("private /tmp: keep %s read-only: %v", path, err)
			}
		}
		unix.Close(fd)
	}
	return nil
}

// minimalDev replaces /dev with a tmpfs holding only harmless nodes.
func minimalDev(fds map[string]int) error {
	if err := unix.Mount("tmpfs", "/dev", "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "size=64k,mode=755"); err != nil {
		return fmt.Errorf("minimal /dev: %v", err)
	}
	for name, fd := range fds {
		dst := "/dev/" + name
		if err := os.WriteFile(dst, nil, 0o666); err != nil {
			return fmt.Errorf("minimal /dev: %s: %v", name, err)
		}
		if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", fd), dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("minimal /dev: %s: %v", name, err)
		}
		setattr(dst, 0, 0, unix.MOUNT_ATTR_RDONLY)
		unix.Close(fd)
	}
	for link, target := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		if err := os.Symlink(target, "/dev/"+link); err != nil {
			return fmt.Errorf("minimal /dev: %s: %v", link, err)
		}
	}
	if err := os.Mkdir("/dev/shm", 0o1777); err != nil {
		return fmt.Errorf("minimal /dev: shm: %v", err)
	}
	if err := unix.Mount("tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=64m,mode=1777"); err != nil {
		return fmt.Errorf("minimal /dev: shm: %v", err)
	}
	return nil
}

// writableRoots makes each existing write root writable again.
func writableRoots(roots []string) (int, error) {
	n := 0
	for _, r := range roots {
		if r == "/" {
			continue
		}
		if _, err := os.Stat(r); err != nil {
			continue
		}
		if !strings.HasPrefix(r, "/tmp/") {
			if err := unix.Mount(r, r, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
				return 0, fmt.Errorf("writable root %s: %v", r, err)
			}
		}
		if err := setattr(r, unix.AT_RECURSIVE, 0, unix.MOUNT_ATTR_RDONLY); err != nil {
			return 0, fmt.Errorf("writable root %s: %v", r, err)
		}
		n++
	}
	return n, nil
}

// pinAncestors binds, onto themselves and still writable, the directories
// between a writable root and a protected or hidden path inside it (.git
// for .git/hooks): a mount point cannot be renamed or removed, so the
// command cannot move the path's parent away — to put a writable copy in
// its place, or to carry a hidden file out from under its cover.
func pinAncestors(protected, roots []string) (int, error) {
	seen := map[string]bool{}
	for _, p := range protected {
		for _, r := range roots {
			if r == "/" || !strings.HasPrefix(p, r+"/") {
				continue
			}
			for d := filepath.Dir(p); d != r && strings.HasPrefix(d, r+"/"); d = filepath.Dir(d) {
				if seen[d] {
					continue
				}
				if fi, err := os.Lstat(d); err != nil || !fi.IsDir() {
					continue
				}
				if err := unix.Mount(d, d, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
					return 0, fmt.Errorf("pin %s: %v", d, err)
				}
				seen[d] = true
			}
		}
	}
	return len(seen), nil
}

// readOnly binds each existing protected path onto itself read-only.
// Placeholders (created empty by sandboxd) count as existing. A protected
// path missing now where the run could create it, with no protected
// ancestor, was there when sandboxd looked (else sandboxd would have made
// a placeholder) and vanished since: the run is refused (vanished), not
// let loose on a path meant to be held.
//
// Each path is looked at with one stat(2), which follows its links as the
// mounts below do: a bind mount resolves its source and its target, so a
// protected path is held where it leads, as when it was first resolved
// component by component (the stats of its every parent, once a path).
func readOnly(paths, placeholders, writable []string, ws string) (int, error) {
	var present, missing []string
	look := func(p string) error {
		var st unix.Stat_t
		err := unix.Stat(p, &st)
		if err == nil {
			present = append(present, p)
			return nil
		}
		return &os.PathError{Op: "stat", Path: p, Err: err}
	}
	for _, p := range append(append([]string{}, paths...), placeholders...) {
		switch err := look(p); {
		case errors.Is(err, os.ErrNotExist):
			missing = append(missing, p)
		case err != nil:
			return 0, fmt.Errorf("protect %s: %v", p, err)
		}
	}
	for p := vanished(missing, present, writable, ws, exists); p != ""; p = vanished(missing, present, writable, ws, exists) {
		// The host may be replacing it right now (git writes its config
		// by rename): look again, briefly.
		err := look(p)
		for try := 0; errors.Is(err, os.ErrNotExist) && try < 20; try++ {
			time.Sleep(time.Millisecond)
			err = look(p)
		}
		if err != nil && exists(p) {
			return 0, fmt.Errorf("protect %s: it is a link to nothing, which the run could create, so it cannot be held read-only; nothing ran: remove the link or create what it points to", p)
		}
		if err != nil {
			return 0, fmt.Errorf("protect %s: it was there when sandboxd looked and is gone now (%v), so it cannot be held read-only; nothing ran: run again", p, err)
		}
		missing = slices.DeleteFunc(missing, func(m string) bool { return m == p })
	}
	notLink := map[string]bool{}
	for _, p := range present {
		if l := linkOnTheWay(p, writable, notLink); l != "" {
			return 0, fmt.Errorf("protect %s: %s is a link, which the run could replace (a read-only mount holds only what it points to); nothing ran: put what it points to in its place, or move it out of the writable tree", p, l)
		}
	}
	n := 0
	for _, p := range present {
		if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return 0, fmt.Errorf("protect %s: %v", p, err)
		}
		if err := setattr(p, unix.AT_RECURSIVE, unix.MOUNT_ATTR_RDONLY, 0); err != nil {
			return 0, fmt.Errorf("protect %s: %v", p, err)
		}
		n++
	}
	return n, nil
}

// hide covers each existing read-denied path: an empty read-only tmpfs over
// a directory, /dev/null over a file.
func hide(paths []string) (int, error) {
	n := 0
	for _, p := range paths {
		hidden, err := hideOne(p)
		// A file the host replaces right now (useradd rewrites /etc/shadow)
		// can vanish between the look and the mount: look again.
		for try := 0; errors.Is(err, os.ErrNotExist) && try < 20; try++ {
			time.Sleep(time.Millisecond)
			hidden, err = hideOne(p)
		}
		if err != nil {
			return 0, fmt.Errorf("hide %s: %v", p, err)
		}
		if hidden {
			n++
		}
	}
	return n, nil
}

// hideOne covers p; false when p does not exist. One stat(2) follows p's
// links as the mount does (most read-denied paths are missing: one failed
// stat each, not one for every parent).
func hideOne(p string) (bool, error) {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err == unix.ENOENT {
		return false, nil
	} else if err != nil {
		return false, err
	}
	var err error
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		err = unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=4k,mode=000")
	} else {
		err = unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
		if err == nil {
			err = setattr(p, 0, unix.MOUNT_ATTR_RDONLY, 0)
		}
	}
	if err == unix.ENOENT {
		err = os.ErrNotExist
	}
	return err == nil, err
}
