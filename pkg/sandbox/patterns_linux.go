//go:build linux

package sandbox

import (
	"os"
	"path/filepath"

	"github.com/moatsec/moat/pkg/glob"
)

// patternMatches lists, when a run starts, what the write_deny patterns
// whose directory is no pattern (the guarded names of package profile:
// .husky, lefthook.yml, .aider.conf.yml, …) match inside the writable
// roots, for the mounts to hold read-only; what the run creates that
// matches, the check after it moves aside (see checker.patterns). Looking
// at each run's start, not at resolution, holds what the host made since.
//
// A match is held where it leads: one through a link that stays inside the
// roots is held at its target (the link, replaced, is a new entry the check
// finds), one leading out of them needs no hold (nothing writes there); a
// link to nothing is passed as it is, and the mounts refuse the run.
func patternMatches(patterns, roots []string) []string {
	var out []string
	lists := map[string][]os.DirEntry{}
	for _, g := range patterns {
		dir, base := filepath.Dir(g), filepath.Base(g)
		if glob.Meta(dir) || !insideAny(dir, roots) {
			continue
		}
		var names []string
		if !glob.Meta(base) {
			names = []string{base}
		} else {
			ents, ok := lists[dir]
			if !ok {
				ents, _ = readDir(dir) // a directory that is not there holds no match
				lists[dir] = ents
			}
			for _, e := range ents {
				if glob.Match(g, dir+"/"+e.Name()) {
					names = append(names, e.Name())
				}
			}
		}
		for _, n := range names {
			p := filepath.Join(dir, n)
			if _, err := os.Lstat(p); err != nil {
				continue
			}
			real, err := filepath.EvalSymlinks(p)
			switch {
			case err != nil:
				out = append(out, p) // a link to nothing: refused with its reason
			case insideAny(real, roots):
				out = append(out, real)
			}
		}
	}
	return out
}
