//go:build linux

package sandbox

import (
	"path/filepath"
	"slices"
	"strings"

	"github.com/moatsec/moat/pkg/glob"
	"github.com/moatsec/moat/pkg/sandbox/inside"
	"github.com/moatsec/moat/pkg/wire"
)

// Paths a failed command was refused. The kernel tells a command, not
// moat, that a write met a read-only mount (EROFS), a hidden directory
// (EACCES) or a covered one (ENOENT): the mount namespace decides these,
// and nothing records them (Landlock's audit records, Linux 6.15, cover
// only what Landlock itself denies, which the mounts have already refused,
// and only with the machine's audit switched on). So moat reads the
// command's own error output: a line with the system's message for one of
// these errors and a path, where the profile's rules refuse that access to
// that path, names the rule. The reading is lexical and looks at nothing on
// the host (no existence oracle for paths the run cannot see); it finds only
// what the command printed, and names only rules the profile has.

// fsErrors are the C library's messages (glibc and musl agree) for the
// errors the filesystem rules give.
var fsErrors = []struct{ msg, code string }{
	{"Read-only file system", "EROFS"},
	{"Permission denied", "EACCES"},
	{"No such file or directory", "ENOENT"},
}

// stderrScan bounds how much of the end of stderr is read.
const stderrScan = 64 << 10

// pathDenials reads stderr for paths the profile p (its protected paths
// as run, git directories included) refuses; orig is the profile as
// resolved, to tell the profile's write_deny from the git protection.
func pathDenials(stderr []byte, p, orig *wire.Profile, cwd string) []wire.PathDenial {
	if len(stderr) > stderrScan {
		stderr = stderr[len(stderr)-stderrScan:]
	}
	var out []wire.PathDenial
	for _, line := range strings.Split(string(stderr), "\n") {
		for _, e := range fsErrors {
			i := strings.Index(line, e.msg)
			if i < 0 {
				continue
			}
			for _, c := range pathsIn(line, i) {
				if !filepath.IsAbs(c) {
					c = filepath.Join(cwd, c)
				}
				d, ok := classify(filepath.Clean(c), e.code, p, orig)
				if !ok || slices.ContainsFunc(out, func(o wire.PathDenial) bool { return o.Path == d.Path }) {
					continue
				}
				if out = append(out, d); len(out) == wire.MaxPathDenials {
					return out
				}
			}
		}
	}
	return out
}

// pathsIn finds the paths a line with an error message at msgAt names:
// every quoted string ('p', "p", ‘p’), else the last word before the
// message (`bash: /etc/x: Read-only file system`).
func pathsIn(line string, msgAt int) []string {
	var out []string
	for _, q := range [][2]string{{"'", "'"}, {`"`, `"`}, {"‘", "’"}, {"`", "'"}} {
		rest := line
		for {
			i := strings.Index(rest, q[0])
			if i < 0 {
				break
			}
			rest = rest[i+len(q[0]):]
			j := strings.Index(rest, q[1])
			if j < 0 {
				break
			}
			if c := rest[:j]; plausiblePath(c) {
				out = append(out, c)
			}
			rest = rest[j+len(q[1]):]
		}
	}
	if len(out) > 0 {
		return out
	}
	before := strings.TrimSuffix(strings.TrimRight(line[:msgAt], " "), ":")
	if i := strings.LastIndex(before, ": "); i >= 0 {
		before = before[i+2:]
	}
	if f := strings.Fields(before); len(f) > 0 && plausiblePath(f[len(f)-1]) {
		out = append(out, f[len(f)-1])
	}
	return out
}

func plausiblePath(s string) bool {
	if s == "" || len(s) > 1024 || strings.HasPrefix(s, "~") || strings.HasPrefix(s, "-") {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// classify says which rule refuses the access an error code means at path.
func classify(path, code string, p, orig *wire.Profile) (wire.PathDenial, bool) {
	d := wire.PathDenial{Path: path, Access: "read", Error: code}
	if e, ok := coveredBy(path, p.FS.ReadDeny); ok {
		if code == "EROFS" {
			d.Access = "write"
		}
		d.Rule, d.Entry, d.Reason = "read_deny", e, "hidden by its read_deny "+e
		return d, true
	}
	switch code {
	case "EROFS":
		d.Access = "write"
		if e, ok := coveredBy(path, p.FS.WriteDeny); ok {
			d.Rule, d.Entry, d.Reason = "write_deny", e, "protected by its write_deny "+e
			if !slices.Contains(orig.FS.WriteDeny, e) {
				d.Reason = "protected in every profile: a git directory's hooks and configuration"
				for _, g := range orig.FS.WriteDenyGlobs {
					if glob.Match(g, e) {
						d.Reason = "protected by its write_deny pattern " + g
					}
				}
				for _, g := range wire.Guarded {
					if glob.Match("/**/"+g, e) {
						d.Reason = "guarded: a tool on the host runs commands from " + g + " (a custom profile may release it)"
					}
				}
			}
			return d, true
		}
		if _, ok := coveredBy(path, append([]string{"/tmp", "/dev", p.Workspace}, p.FS.Write...)); ok {
			return d, false // writable: something else made it read-only
		}
		d.Rule, d.Reason = "write", "not under its writable roots"
		return d, true
	case "ENOENT":
		if seen(path, p) {
			return d, false
		}
		// Whether it exists on the host is not looked at (the run must not
		// learn it): the reason says so.
		d.Rule, d.Reason = "read", "outside what a run sees (the system, the workspace, the writable roots and its read set): the run could not see it even where it exists"
		return d, true
	}
	return d, false
}

// coveredBy is the entry of list that path is, or lies under.
func coveredBy(path string, list []string) (string, bool) {
	for _, e := range list {
		if e == "/" || path == e || strings.HasPrefix(path, strings.TrimSuffix(e, "/")+"/") {
			return e, true
		}
	}
	return "", false
}

// seen reports whether a run of p sees path (or would, were it there):
// the system, and the workspace, writable roots and read set, with the
// directories above them.
func seen(path string, p *wire.Profile) bool {
	top, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if top == "" || inside.SystemRoots[top] {
		return true
	}
	for _, v := range append(append([]string{p.Workspace}, p.FS.Write...), p.FS.Read...) {
		if v == "/" || path == v || strings.HasPrefix(path, v+"/") || strings.HasPrefix(v, path+"/") {
			return true
		}
	}
	return false
}
