//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moatsec/moat/pkg/wire"
	"golang.org/x/sys/unix"
)

// prepareCaches makes the profile's missing cache directories, owned by the
// run's user, before the run mounts them writable. It returns how many are
// ready and why the others are not; a cache that cannot be made does not stop
// the run (the toolchain then says it cannot write there).
//
// sandboxd is root and the path lies in the user's home, which the user
// controls: every step opens with RESOLVE_NO_SYMLINKS, and only a directory
// sandboxd itself just made is handed to the user, so a planted symlink or a
// swapped directory cannot make root create or chown anything elsewhere.
func prepareCaches(caches []wire.Cache, uid, gid int) (ready int, problems []string) {
	for _, c := range caches {
		if err := ensureOwnedDir(c.Dir, uid, gid); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", c.Dir, err))
			continue
		}
		ready++
	}
	return ready, problems
}

// ensureOwnedDir makes dir and its missing parents, each owned by uid:gid,
// without following a symlink anywhere on the way.
func ensureOwnedDir(dir string, uid, gid int) error {
	if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
		return errors.New("not an absolute clean path")
	}
	fd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	// The usual case, every run after the first: the whole path is there,
	// opened in one call that still follows no symlink.
	if whole, err := openNoFollow(fd, strings.TrimPrefix(dir, "/")); err == nil {
		unix.Close(fd)
		return ownedBy(whole, uid)
	}
	for _, name := range strings.Split(strings.TrimPrefix(dir, "/"), "/") {
		next, err := openNoFollow(fd, name)
		if errors.Is(err, unix.ENOENT) {
			if err = unix.Mkdirat(fd, name, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
				unix.Close(fd)
				return fmt.Errorf("mkdir %s: %w", name, err)
			}
			if next, err = openNoFollow(fd, name); err == nil {
				err = handOver(next, uid, gid)
			}
		}
		unix.Close(fd)
		if err != nil {
			if next >= 0 {
				unix.Close(next)
			}
			return fmt.Errorf("%s: %w", name, err)
		}
		fd = next
	}
	return ownedBy(fd, uid)
}

// ownedBy checks that the directory open at fd belongs to uid, and closes it.
func ownedBy(fd, uid int) error {
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if int(st.Uid) != uid {
		return fmt.Errorf("owned by uid %d, not the run's %d", st.Uid, uid)
	}
	return nil
}

// openNoFollow opens name under dirfd as a directory, refusing symlinks.
func openNoFollow(dirfd int, name string) (int, error) {
	how := &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC | unix.O_NOFOLLOW,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_BENEATH}
	fd, err := unix.Openat2(dirfd, name, how)
	if err != nil {
		return -1, err
	}
	return fd, nil
}

// handOver gives a directory sandboxd just made to the run's user: only an
// empty directory that root owns, so one swapped in by the user in the
// meantime is left as it is.
func handOver(fd, uid, gid int) error {
	if os.Geteuid() != 0 {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Uid != 0 || st.Nlink != 2 {
		return nil
	}
	return unix.Fchown(fd, uid, gid)
}

// cacheNote is how prepareCaches went, for the run's isolation list.
func cacheNote(ready int, problems []string) []string {
	if ready == 0 && len(problems) == 0 {
		return nil
	}
	out := []string{fmt.Sprintf("caches:%d writable", ready)}
	for _, p := range problems {
		out = append(out, "cache unavailable: "+p)
	}
	return out
}
