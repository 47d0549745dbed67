//go:build linux

package inside

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Reads are confined by default (docs/sandbox.md, "What a run sees"): every
// profile but trusted sees the system a program needs, its workspace, its
// writable roots (the toolchain caches among them), its private /tmp and
// the profile's read set. Every other entry at the top of the filesystem —
// /root, /home, /var, /srv, /mnt, /media, /run, /boot and whatever else a
// host keeps there — is covered: an empty, read-only directory over a
// directory (see confineReads), /dev/null over a file. Covering by default (rather than
// listing what to cover) means a directory the host adds later (/data,
// /work) is absent too.
//
// What the run must see under a covered entry (a workspace in /home, the
// caches in ~/.cache/moat, ~/.gitconfig) is held open before anything is
// covered and bound back at its path from that descriptor, so no path
// lookup after the covering can be steered elsewhere by a symlink.

// SystemRoots are the top-level entries a run sees as they are: programs,
// libraries and configuration (read-only, minus the read-denied secrets),
// package stores, and the kernel's interfaces; /tmp, /dev and /proc are
// replaced by the run's own.
var SystemRoots = map[string]bool{
	"usr": true, "bin": true, "sbin": true, "lib": true, "lib32": true, "lib64": true, "libx32": true,
	"etc": true, "opt": true, "nix": true, "snap": true,
	"proc": true, "dev": true, "sys": true, "tmp": true,
}

// systemFiles are system paths that may point into a covered entry and
// that programs need to work: /etc/resolv.conf is a link into /run under
// systemd-resolved.
var systemFiles = []string{"/etc/resolv.conf"}

// readBack is a path bound back into a covered entry.
type readBack struct {
	dst string // where the run sees it
	fd  int    // O_PATH descriptor of what it is, opened before covering
	dir bool
}

// readPlan is what confineReads covers and binds back.
type readPlan struct {
	cover []string // top-level entries, absolute
	back  []readBack
	// skipped counts read entries that do not exist (listed in the
	// profile, never created on the host).
	skipped int
}

// planReads lists the top-level entries to cover and opens what must be
// bound back into them: visible are the paths the run sees besides the
// system. It must run before anything is covered or made read-only.
//
// An entry that leads into a read-denied path (a ~/.gitconfig linked to a
// key under ~/.ssh) is skipped: bound back where it is named, it would show
// what the read deny hides where it is.
func planReads(visible, deny []string, uid, gid int) (*readPlan, error) {
	top, err := os.ReadDir("/")
	if err != nil {
		return nil, fmt.Errorf("confine reads: list /: %v", err)
	}
	plan := &readPlan{}
	for _, e := range top {
		if SystemRoots[e.Name()] || e.Type()&os.ModeSymlink != 0 {
			// A top-level link resolves to a path that is itself
			// covered or a system root.
			continue
		}
		plan.cover = append(plan.cover, "/"+e.Name())
	}
	covered := func(p string) bool {
		return slices.ContainsFunc(plan.cover, func(c string) bool { return p == c || strings.HasPrefix(p, c+"/") })
	}
	var dsts []string
	var denyReal []string // deny with its links resolved, once a run
	for _, v := range append(slices.Clone(systemFiles), visible...) {
		real, err := filepath.EvalSymlinks(v)
		if err == nil && real != filepath.Clean(v) && denyReal == nil {
			denyReal = resolveAll(deny)
		}
		// Only a link can lead elsewhere than hide() will cover, or past a
		// directory the run's user may not enter (the helper resolves as
		// root; the link is the user's).
		if err != nil || real != filepath.Clean(v) && (denied(real, deny, denyReal) || !reachable(real, uid, gid)) {
			plan.skipped++
			continue
		}
		// Seen where it is, and where it is named when that is a link
		// (~/.gitconfig pointing into a dotfiles checkout).
		at := []string{real}
		if real != filepath.Clean(v) {
			at = append(at, namedAt(v))
		}
		for _, dst := range at {
			if dst != "" && covered(dst) && dst != "/" && !slices.Contains(plan.cover, dst) && !slices.Contains(dsts, dst) {
				dsts = append(dsts, dst)
			} else if slices.Contains(plan.cover, dst) {
				// A whole top-level entry is visible: do not cover it.
				plan.cover = slices.DeleteFunc(plan.cover, func(c string) bool { return c == dst })
			}
		}
	}
	// Parents first; a path inside another bound-back path is seen through it.
	slices.Sort(dsts)
	var kept []string
	for _, dst := range dsts {
		if !covered(dst) || slices.ContainsFunc(kept, func(k string) bool { return strings.HasPrefix(dst, k+"/") }) {
			continue
		}
		fd, err := unix.Open(dst, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			plan.skipped++
			continue
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("confine reads: %s: %v", dst, err)
		}
		plan.back = append(plan.back, readBack{dst: dst, fd: fd, dir: st.Mode&unix.S_IFMT == unix.S_IFDIR})
		kept = append(kept, dst)
	}
	return plan, nil
}

// reachable reports whether the user uid (primary group gid) may reach and
// read path by its mode bits: search on every directory above it, read on
// it. Supplementary groups and ACLs are not consulted, so it errs towards
// no.
func reachable(path string, uid, gid int) bool {
	if uid == 0 {
		return true
	}
	may := func(st *unix.Stat_t, bits uint32) bool { // bits as for "other"
		switch {
		case int(st.Uid) == uid:
			return st.Mode&(bits<<6) == bits<<6
		case int(st.Gid) == gid:
			return st.Mode&(bits<<3) == bits<<3
		}
		return st.Mode&bits == bits
	}
	var st unix.Stat_t
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		if unix.Stat(dir, &st) != nil || !may(&st, 0o1) {
			return false
		}
		if dir == "/" {
			break
		}
	}
	if unix.Stat(path, &st) != nil {
		return false
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return may(&st, 0o5)
	}
	return may(&st, 0o4)
}

// denied reports whether p lies in a read-denied path, as named (deny) or
// with its links resolved (denyReal, from resolveAll).
func denied(p string, deny, denyReal []string) bool {
	for _, d := range slices.Concat(deny, denyReal) {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

// resolveAll is each of paths with its links resolved, leaving out those
// that do not resolve (non-nil, so it is worked out once).
func resolveAll(paths []string) []string {
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			out = append(out, real)
		}
	}
	return out
}

// namedAt is p with its parent's links resolved but not its own: where a
// link p is seen. Empty when the parent does not resolve.
func namedAt(p string) string {
	dir, err := filepath.EvalSymlinks(filepath.Dir(p))
	if err != nil {
		return ""
	}
	return filepath.Join(dir, filepath.Base(p))
}

// close releases the descriptors of a plan that was not carried out.
func (plan *readPlan) close() {
	for _, b := range plan.back {
		if b.fd >= 0 {
			unix.Close(b.fd)
		}
	}
}

// stage is where confineReads builds its covers: a tmpfs mounted on /tmp
// before the run's private /tmp is mounted over it.
const stage = "/tmp"

// confineReads covers the plan's entries and binds its paths back,
// read-only (writable roots are made writable again afterwards). It must
// run before the private /tmp is mounted, which hides its staging tmpfs.
// It returns the mechanism applied.
//
// One tmpfs holds every cover: the mount points of what is bound back are
// made in it first, then it is made read-only, and each covered directory
// gets a bind of its own empty directory in it — a bind copies the
// read-only flag, and costs less than a tmpfs of its own.
func confineReads(plan *readPlan) (string, error) {
	defer plan.close()
	if err := unix.Mount("tmpfs", stage, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=64k,nr_inodes=4096,mode=755"); err != nil {
		return "", fmt.Errorf("confine reads: stage the covers: %v", err)
	}
	kinds := make(map[string]uint32, len(plan.cover))
	for _, c := range plan.cover {
		var st unix.Stat_t
		if err := unix.Lstat(c, &st); err != nil {
			continue // gone meanwhile: nothing to cover
		}
		kinds[c] = st.Mode & unix.S_IFMT
		if kinds[c] == unix.S_IFDIR {
			if err := os.Mkdir(stage+c, 0o755); err != nil {
				return "", fmt.Errorf("confine reads: stage %s: %v", c, err)
			}
		}
	}
	for _, b := range plan.back {
		if err := mountPoint(stage+b.dst, b.dir); err != nil {
			return "", fmt.Errorf("confine reads: stage %s: %v", b.dst, err)
		}
	}
	if err := setattr(stage, 0, unix.MOUNT_ATTR_RDONLY, 0); err != nil {
		return "", fmt.Errorf("confine reads: stage read-only: %v", err)
	}
	for _, c := range plan.cover {
		if err := coverEntry(c, kinds[c]); err != nil {
			return "", fmt.Errorf("confine reads: cover %s: %v", c, err)
		}
	}
	for i := range plan.back {
		b := &plan.back[i]
		if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", b.fd), b.dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return "", fmt.Errorf("confine reads: show %s: %v", b.dst, err)
		}
		if err := setattr(b.dst, unix.AT_RECURSIVE, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID, 0); err != nil {
			return "", fmt.Errorf("confine reads: show %s read-only: %v", b.dst, err)
		}
		unix.Close(b.fd)
		b.fd = -1
	}
	return fmt.Sprintf("reads:system+%d paths (%d covered, %d missing)", len(plan.back), len(plan.cover), plan.skipped), nil
}

// coverEntry binds its empty directory in the stage over a directory and
// /dev/null, read-only, over anything else but a link.
func coverEntry(path string, kind uint32) error {
	switch kind {
	case 0, unix.S_IFLNK:
		return nil
	case unix.S_IFDIR:
		return unix.Mount(stage+path, path, "", unix.MS_BIND, "")
	}
	if err := unix.Mount("/dev/null", path, "", unix.MS_BIND, ""); err != nil {
		return err
	}
	return setattr(path, 0, unix.MOUNT_ATTR_RDONLY, 0)
}

// mountPoint makes an empty directory, or an empty file, at path and its
// missing parents.
func mountPoint(path string, dir bool) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if dir {
		if err := os.Mkdir(path, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		return nil
	}
	return os.WriteFile(path, nil, 0o444)
}

// readRules are the Landlock rules that repeat the read confinement, so a
// hole in the mount namespace would still not let a file's content out:
// every directory may be listed (tools walk up from their working
// directory; covered ones are empty), but files are read and executed only
// under the system roots, the workspace, the writable roots and the read
// set. /tmp and /dev get their rights with the writable roots.
func readRules(cfg *Config) []pathRule {
	var dirs, files []string
	for name := range SystemRoots {
		if name != "tmp" && name != "dev" {
			dirs = append(dirs, "/"+name)
		}
	}
	for _, v := range append(slices.Clone(systemFiles), visible(cfg)...) {
		// One stat(2), following links as the rule's open(2) does.
		var st unix.Stat_t
		if unix.Stat(v, &st) != nil {
			continue
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			dirs = append(dirs, v)
		} else {
			files = append(files, v)
		}
	}
	return []pathRule{
		{access: unix.LANDLOCK_ACCESS_FS_READ_DIR, paths: []string{"/"}},
		{access: fsRead, paths: dirs, skipGone: true},
		{access: fsRead & fsFile, paths: files, skipGone: true},
	}
}
