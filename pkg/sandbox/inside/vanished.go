package inside

import (
	"os"
	"path/filepath"
	"strings"
)

// vanished returns the first of missing — protected paths not there when
// the helper looked — that the run could create and nothing holds: inside
// a writable root, not the workspace itself, its first missing component
// inside a writable root too, and no present protected path above it. Such
// a path was there when sandboxd looked, since for a missing one sandboxd
// makes a placeholder of its first missing component (which is present,
// and above it). "" when there is none.
func vanished(missing, present, writable []string, ws string, exists func(string) bool) string {
	for _, p := range missing {
		if p == ws || !under(p, writable) {
			continue
		}
		top := p
		for parent := filepath.Dir(top); parent != top && !exists(parent); parent = filepath.Dir(top) {
			top = parent
		}
		if !under(top, writable) || held(p, present) {
			continue
		}
		return p
	}
	return ""
}

// under reports whether p is one of roots or below one.
func under(p string, roots []string) bool {
	for _, r := range roots {
		if p == r || r == "/" || strings.HasPrefix(p, r+"/") {
			return true
		}
	}
	return false
}

// held reports whether a protected path in present is an ancestor of p.
func held(p string, present []string) bool {
	for _, q := range present {
		if strings.HasPrefix(p, q+"/") {
			return true
		}
	}
	return false
}

// exists reports whether p is there (a link counts, dangling or not).
func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// linkOnTheWay returns the first symbolic link among p and its ancestors
// below the writable root holding it, or "": the read-only mount of a
// protected path binds what the link points to, while the link itself is a
// name in a writable directory the run could remove and write anew.
// notLink remembers the components already found not to be links, so
// protected paths sharing parents (.git/config, .git/hooks) look once.
func linkOnTheWay(p string, writable []string, notLink map[string]bool) string {
	root := ""
	for _, r := range writable {
		if (p == r || r == "/" || strings.HasPrefix(p, r+"/")) && len(r) > len(root) {
			root = r
		}
	}
	if root == "" || p == root {
		return ""
	}
	rest := strings.TrimPrefix(p, strings.TrimSuffix(root, "/")+"/")
	at := strings.TrimSuffix(root, "/")
	for _, part := range strings.Split(rest, "/") {
		at += "/" + part
		if notLink[at] {
			continue
		}
		if fi, err := os.Lstat(at); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			return at
		}
		notLink[at] = true
	}
	return ""
}
