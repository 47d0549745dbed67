// Package glob matches and expands the path patterns of profiles' read_deny
// and write_deny lists and of .moat-profile files.
//
// The syntax is filepath.Match's within one name (*, ?, [class], \ to
// escape), plus one addition: a whole path element "**" matches zero or
// more directories, so "logs/**/*.txt" matches logs/a.txt and
// logs/x/y/a.txt alike. "**" inside a name ("a**b") is a plain "*".
// Expansion never follows a symbolic link while descending through "**".
package glob

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Meta reports whether p holds any pattern syntax.
func Meta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

// Match reports whether the clean, slash-separated path name matches
// pattern. A malformed pattern matches nothing.
func Match(pattern, name string) bool {
	return match(strings.Split(pattern, "/"), strings.Split(name, "/"))
}

func match(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for len(pat) > 1 && pat[1] == "**" {
				pat = pat[1:]
			}
			for i := 0; i <= len(name); i++ {
				if match(pat[1:], name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, err := filepath.Match(element(pat[0]), name[0]); err != nil || !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}

// element is one pattern element as filepath.Match reads it: "**" inside a
// name is "*".
func element(e string) string {
	for strings.Contains(e, "**") {
		e = strings.ReplaceAll(e, "**", "*")
	}
	return e
}

// Expand lists the existing paths that match the absolute pattern, sorted.
// It returns at most maxMatches paths and reads at most maxEntries directory
// entries: past either it is an error, since a deny list cannot be enforced
// in part.
func Expand(pattern string, maxMatches, maxEntries int) ([]string, error) {
	pattern = filepath.Clean(pattern)
	if !filepath.IsAbs(pattern) {
		return nil, fmt.Errorf("pattern %q is not absolute", pattern)
	}
	segs := strings.Split(pattern, "/")[1:]
	// The literal prefix needs no directory read.
	base := "/"
	for len(segs) > 0 && !Meta(segs[0]) {
		base = filepath.Join(base, segs[0])
		segs = segs[1:]
	}
	e := &expander{maxMatches: maxMatches, maxEntries: maxEntries, seen: map[string]bool{}}
	if _, err := os.Lstat(base); err != nil {
		return nil, nil
	}
	if err := e.walk(base, segs); err != nil {
		return nil, fmt.Errorf("pattern %s: %w", pattern, err)
	}
	slices.Sort(e.out)
	return e.out, nil
}

type expander struct {
	maxMatches, maxEntries int
	entries                int
	seen                   map[string]bool
	out                    []string
}

func (e *expander) add(p string) error {
	if e.seen[p] {
		return nil
	}
	e.seen[p] = true
	e.out = append(e.out, p)
	if len(e.out) > e.maxMatches {
		return fmt.Errorf("matches more than %d paths: make it more specific", e.maxMatches)
	}
	return nil
}

func (e *expander) walk(dir string, segs []string) error {
	if len(segs) == 0 {
		return e.add(dir)
	}
	if segs[0] == "**" {
		if err := e.walk(dir, segs[1:]); err != nil {
			return err
		}
		ents, err := e.read(dir)
		if err != nil {
			return err
		}
		for _, d := range ents {
			if d.IsDir() { // a symlink is not: ** never follows one
				if err := e.walk(filepath.Join(dir, d.Name()), segs); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if !Meta(segs[0]) {
		p := filepath.Join(dir, segs[0])
		if _, err := os.Lstat(p); err != nil {
			return nil
		}
		return e.walk(p, segs[1:])
	}
	ents, err := e.read(dir)
	if err != nil {
		return err
	}
	for _, d := range ents {
		if ok, _ := filepath.Match(element(segs[0]), d.Name()); ok {
			if err := e.walk(filepath.Join(dir, d.Name()), segs[1:]); err != nil {
				return err
			}
		}
	}
	return nil
}

// read lists dir (nothing for what is not a readable directory), charging
// the entries to the limit.
func (e *expander) read(dir string) ([]os.DirEntry, error) {
	ents, _ := os.ReadDir(dir)
	e.entries += len(ents)
	if e.entries > e.maxEntries {
		return nil, fmt.Errorf("reads more than %d directory entries: make it more specific", e.maxEntries)
	}
	return ents, nil
}
