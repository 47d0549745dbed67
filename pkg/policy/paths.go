package policy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/moatsec/moat/pkg/glob"
	"github.com/moatsec/moat/pkg/wire"
)

// abs makes p absolute against dir, expanding ~; it does not touch the disk.
func (j *judge) abs(p, dir string) string {
	switch {
	case p == "~" || strings.HasPrefix(p, "~/"):
		p = filepath.Join(j.home, strings.TrimPrefix(p, "~"))
	case !filepath.IsAbs(p):
		p = filepath.Join(dir, p)
	}
	return filepath.Clean(p)
}

// realPath resolves symlinks in p, including a final component that is a
// dangling link (writing through it creates its target) and components that
// do not exist yet.
func realPath(p string) string {
	for hops := 0; hops < 40; hops++ {
		fi, err := os.Lstat(p)
		if err == nil && fi.Mode()&os.ModeSymlink != 0 {
			t, err := os.Readlink(p)
			if err != nil {
				return p
			}
			if !filepath.IsAbs(t) {
				t = filepath.Join(filepath.Dir(p), t)
			}
			p = filepath.Clean(t)
			continue
		}
		dir := filepath.Dir(p)
		if dir == p {
			return p
		}
		if rdir, err := filepath.EvalSymlinks(dir); err == nil {
			return filepath.Join(rdir, filepath.Base(p))
		}
		return filepath.Join(realPath(dir), filepath.Base(p))
	}
	return p
}

func within(p, root string) bool {
	return p == root || root == "/" || strings.HasPrefix(p, root+"/")
}

func withinAny(p string, roots []string) (string, bool) {
	for _, r := range roots {
		if within(p, r) {
			return r, true
		}
	}
	return "", false
}

// guarded is the write_deny pattern, or the name the profile guards in its
// workspace (wire.Guarded), that p lies in, as written or where its links
// lead (real): the host may read it through either.
func (j *judge) guarded(p, real string) (string, bool) {
	prof := j.in.Profile
	for _, x := range []string{real, p} {
		if g, ok := matchingPattern(x, prof.FS.WriteDenyGlobs); ok {
			return g, true
		}
		if ws := prof.Workspace; len(x) > len(ws)+1 && x[len(ws)] == '/' && strings.HasPrefix(x, ws) && prof.GuardsWorkspace() {
			if g, ok := matchingPattern(x[len(ws)+1:], wire.Guarded); ok && !slices.Contains(prof.FS.Unguarded, g) {
				return filepath.Join(ws, g), true
			}
		}
		if p == real {
			break
		}
	}
	return "", false
}

// matchingPattern is the first of patterns that the clean path p, or a
// directory p lies in, matches (both absolute, or both relative). Only
// the paths that start with a pattern's literal part are matched against it.
func matchingPattern(p string, patterns []string) (string, bool) {
	for _, g := range patterns {
		lit := g
		if i := strings.IndexAny(g, `*?[\`); i >= 0 {
			lit = g[:i]
		}
		for q := p; strings.HasPrefix(q, lit) || isParent(q, lit); q = filepath.Dir(q) {
			if glob.Match(g, q) {
				return g, true
			}
			if q == "/" || q == "." {
				break
			}
		}
	}
	return "", false
}

// isParent reports whether dir is a directory above p.
func isParent(dir, p string) bool {
	return len(p) > len(dir) && p[len(dir)] == '/' && strings.HasPrefix(p, dir)
}

var windowsPath = regexp.MustCompile(`^[A-Za-z]:[\\/]|^\\\\`)

// blockDevice matches the disks a write would destroy.
var blockDevice = regexp.MustCompile(`^/dev/(sd[a-z]+|hd[a-z]+|vd[a-z]+|xvd[a-z]+|nvme\d+n\d+|mmcblk\d+|loop\d+|dm-\d+|md\d+|mapper/.+|disk/.+|sr\d+|nbd\d+)(p?\d+)?$`)

// harmlessDevices may always be written.
func harmlessDevice(p string) bool {
	switch p {
	case "/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty", "/dev/zero":
		return true
	}
	return strings.HasPrefix(p, "/dev/fd/") || strings.HasPrefix(p, "/proc/self/fd/")
}

// write judges one write by what (a command name or "a redirect") to target,
// relative to dir.
func (j *judge) write(what string, target arg, dir string) {
	if target.dyn {
		j.add(prompt, "fs.write-unknown", "", "%s writes to %s, a path only known at run time", what, short(target.s))
		return
	}
	if windowsPath.MatchString(target.s) {
		j.add(deny, "fs.write-outside", "", "%s writes %s, a Windows system path outside the writable roots", what, target.s)
		return
	}
	p := j.abs(target.s, dir)
	if harmlessDevice(p) {
		return
	}
	real := realPath(p)
	shown := p
	if real != p {
		shown = p + " (→ " + real + ")"
	}
	fs := j.in.Profile.FS
	if blockDevice.MatchString(real) {
		j.add(deny, "destructive.disk", "", "%s writes the block device %s", what, real)
		return
	}
	if r, ok := withinAny(real, fs.ReadDeny); ok {
		j.add(deny, "fs.write-protected", "", "%s writes %s, inside %s, which no sandbox may touch", what, shown, r)
		return
	}
	if r, ok := withinAny(real, fs.WriteDeny); ok {
		j.add(deny, "fs.write-protected", "", "%s writes %s, inside %s, which profile %s keeps read-only", what, shown, r, j.in.Profile.Name)
		return
	}
	if g, ok := j.guarded(p, real); ok {
		j.add(deny, "fs.write-protected", "", "%s writes %s, which profile %s keeps read-only (write_deny %s)", what, shown, j.in.Profile.Name, g)
		return
	}
	if _, ok := withinAny(real, fs.Write); ok {
		j.add(allow, "fs.write-inside", "", "%s writes %s, inside the writable roots", what, shown)
		return
	}
	// The sandbox's /tmp is a private tmpfs; only the workspace, when it
	// lives under /tmp, is the host's own there.
	if within(real, "/tmp") && !within(real, j.in.Workspace) {
		j.add(allow, wire.ReasonWriteTmp, "", "%s writes %s, in the sandbox's private /tmp", what, shown)
		return
	}
	roots := "nothing"
	if len(fs.Write) > 0 {
		roots = strings.Join(fs.Write, ", ")
	}
	j.add(deny, "fs.write-outside", "", "%s writes %s, outside what profile %s may write (%s)", what, shown, j.in.Profile.Name, roots)
}

// writes judges each target.
func (j *judge) writes(what string, targets []arg, dir string) {
	for _, t := range targets {
		j.write(what, t, dir)
	}
}

// readDenied denies a command whose arguments name a path no sandbox may
// read. Only words that look like paths are checked, lexically: the sandbox
// hides those paths whatever the policy says.
func (j *judge) readDenied(args []arg, dir string) {
	for _, a := range args[1:] {
		j.readDeniedArg(a, dir)
	}
}

func (j *judge) readDeniedArg(a arg, dir string) {
	if a.dyn {
		return
	}
	s := a.s
	if i := strings.IndexByte(s, '='); i > 0 && strings.HasPrefix(s, "-") {
		s = s[i+1:] // --file=/root/.ssh/id_rsa
	}
	if !strings.Contains(s, "/") && !strings.HasPrefix(s, "~") {
		return
	}
	p := j.abs(s, dir)
	if r, ok := withinAny(p, j.in.Profile.FS.ReadDeny); ok {
		j.add(deny, "fs.read-denied", "", "reads %s, inside %s, which no sandbox may read", p, r)
	}
}

// rootish reports whether removing target recursively would destroy the
// system, a home or the workspace: /, a system directory, a home, the
// workspace root, or a glob over one of them.
func (j *judge) rootish(target arg, dir string) bool {
	if target.dyn {
		return false
	}
	s := target.s
	glob := false
	if strings.HasSuffix(s, "/*") || s == "*" || strings.HasSuffix(s, "/.*") || s == ".*" {
		glob = true
		s = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(s, "*"), "."), "/")
		if s == "" && !strings.HasPrefix(target.s, "/") {
			s = "."
		} else if s == "" {
			s = "/"
		}
	}
	p := j.abs(s, dir)
	cands := []string{p, realPath(p)}
	for _, c := range cands {
		if c == "/" || c == j.home || c == j.in.Workspace || c == j.in.Profile.Workspace || isSystemDir(c) {
			return true
		}
		if glob && c == filepath.Dir(j.in.Workspace) {
			return true
		}
	}
	return false
}

var systemDirs = map[string]bool{
	"/bin": true, "/boot": true, "/dev": true, "/etc": true, "/home": true, "/lib": true, "/lib32": true,
	"/lib64": true, "/libx32": true, "/opt": true, "/proc": true, "/root": true, "/run": true, "/sbin": true,
	"/srv": true, "/sys": true, "/usr": true, "/var": true, "/mnt": true, "/media": true,
	"/usr/bin": true, "/usr/lib": true, "/usr/local": true, "/usr/sbin": true, "/var/lib": true,
}

func isSystemDir(p string) bool { return systemDirs[p] }

func parent(p string) string { return filepath.Dir(p) }

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
