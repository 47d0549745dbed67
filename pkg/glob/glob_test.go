package glob

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"/w/g/**/*.txt", "/w/g/a.txt", true}, // ** is zero directories
		{"/w/g/**/*.txt", "/w/g/x/a.txt", true},
		{"/w/g/**/*.txt", "/w/g/x/y/z/w/a.txt", true},
		{"/w/g/**/*.txt", "/w/g/x/a.md", false},
		{"/w/g/**/*.txt", "/w/h/a.txt", false},
		{"/w/g/**", "/w/g", true},
		{"/w/g/**", "/w/g/a/b", true},
		{"/w/**/secret", "/w/a/b/secret", true},
		{"/w/**/secret", "/w/secret", true},
		{"/w/**/secret", "/w/a/secret/b", false},
		{"/w/*/secret", "/w/a/b/secret", false}, // * stays within one name
		{"/w/a**b/c", "/w/axyb/c", true},        // ** inside a name is *
		{"/w/a**b/c", "/w/ax/yb/c", false},
		{"/w/**/**/x", "/w/x", true},
		{"/w/?.txt", "/w/a.txt", true},
		{"/w/[ab].txt", "/w/c.txt", false},
		{"/w/.env*", "/w/.env.local", true},
	} {
		if got := Match(tc.pattern, tc.name); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pattern, tc.name, got, tc.want)
		}
	}
}

// TestExpandDepths: ** finds matches zero to four directories down.
func TestExpandDepths(t *testing.T) {
	dir := t.TempDir()
	files := []string{"g/s0.txt", "g/a/s1.txt", "g/a/b/s2.txt", "g/a/b/c/s3.txt", "g/a/b/c/d/s4.txt", "g/a/b/c/d/keep.md", "other/s.txt"}
	for _, f := range files {
		p := filepath.Join(dir, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("x"), 0o644)
	}
	os.Symlink(dir, filepath.Join(dir, "g", "loop")) // not followed by **
	got, err := Expand(filepath.Join(dir, "g/**/*.txt"), 100, 100)
	if err != nil {
		t.Fatal(err)
	}
	var rel []string
	for _, p := range got {
		r, _ := filepath.Rel(dir, p)
		rel = append(rel, r)
	}
	want := []string{"g/a/b/c/d/s4.txt", "g/a/b/c/s3.txt", "g/a/b/s2.txt", "g/a/s1.txt", "g/s0.txt"}
	if !slices.Equal(rel, want) {
		t.Fatalf("got %v, want %v", rel, want)
	}
	if _, err := Expand(filepath.Join(dir, "**"), 3, 100); err == nil || !strings.Contains(err.Error(), "more than 3 paths") {
		t.Fatalf("a glob past its match limit: got %v, want an error", err)
	}
	if _, err := Expand(filepath.Join(dir, "**/nothing"), 100, 3); err == nil || !strings.Contains(err.Error(), "more than 3 directory entries") {
		t.Fatalf("a glob past its read limit: got %v, want an error", err)
	}
	if got, _ := Expand(filepath.Join(dir, "nothere/**/x"), 10, 10); len(got) != 0 {
		t.Fatalf("missing base: %v", got)
	}
	if got, _ := Expand(filepath.Join(dir, "other/s.txt"), 10, 10); len(got) != 1 {
		t.Fatalf("a literal path: %v", got)
	}
}
