//go:build linux

package sandbox

import (
	"os"
	"path/filepath"

	"github.com/moatsec/moat/pkg/glob"
	"github.com/moatsec/moat/pkg/wire"
)

// guardPatterns are the patterns a run's matches are held against and
// checked after, by what is there rather than by when it changed: the
// write_deny patterns whose directory part is literal, and what p guards
// (wire.Guarded) at the workspace and at each repository's top in it.
func guardPatterns(p *wire.Profile, tops []string) []string {
	var out []string
	for _, g := range p.FS.WriteDenyGlobs {
		if !glob.Meta(filepath.Dir(g)) {
			out = append(out, g)
		}
	}
	for _, top := range tops {
		out = append(out, p.Guards(top)...)
	}
	return out
}

// A match is one entry a pattern matches, seen as the host sees it:
// through the links on its way.
type match struct {
	entry   string // the entry itself, its directory's links resolved
	target  string // where it leads, every link resolved; "" for a link to nothing
	pattern string
}

// matches lists what patterns match now. A directory is read as the host
// reads it, following links; each directory once.
func matches(patterns []string) []match {
	var out []match
	lists := map[string][]os.DirEntry{}
	realDirs := map[string]string{}
	for _, g := range patterns {
		dir, base := filepath.Dir(g), filepath.Base(g)
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
				if glob.Match(base, e.Name()) {
					names = append(names, e.Name())
				}
			}
		}
		if len(names) == 0 {
			continue
		}
		realDir, ok := realDirs[dir]
		if !ok {
			realDir, _ = filepath.EvalSymlinks(dir)
			realDirs[dir] = realDir
		}
		if realDir == "" {
			continue
		}
		for _, n := range names {
			p := filepath.Join(dir, n)
			if _, err := os.Lstat(p); err != nil {
				continue
			}
			target, _ := filepath.EvalSymlinks(p)
			out = append(out, match{entry: filepath.Join(realDir, n), target: target, pattern: g})
		}
	}
	return out
}

// holds lists what to hold read-only for a run of the matches now: each
// where it leads, when that lies in the writable roots. A link to nothing
// is not held (nothing is there to hold); the check after the run finds
// it if the run gave it a target.
func holds(ms []match, roots []string) []string {
	var out []string
	for _, m := range ms {
		if m.target != "" && insideAny(m.target, roots) {
			out = append(out, m.target)
		}
	}
	return out
}
