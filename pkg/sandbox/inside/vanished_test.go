package inside

import (
	"os"
	"path/filepath"
	"testing"
)

// A protected path that vanished between sandboxd's look and the helper's
// mount is found, so the run is refused rather than left free to create it
// (a .git/config with core.fsmonitor, run later by git on the host); a
// missing path that cannot be written, or that a placeholder holds, is not.
func TestVanished(t *testing.T) {
	ws := "/w"
	writable := []string{"/w", "/cache"}
	there := map[string]bool{"/": true, "/w": true, "/w/.git": true, "/w/sub": true, "/cache": true}
	exists := func(p string) bool { return there[p] }
	for _, c := range []struct {
		name             string
		missing, present []string
		want             string
	}{
		{"gone from the workspace", []string{"/w/.git/config"}, []string{"/w/.git/hooks"}, "/w/.git/config"},
		{"gone from a cache root", []string{"/cache/x/.envrc"}, nil, "/cache/x/.envrc"},
		{"held by a placeholder above it", []string{"/w/sub/.git/config"}, []string{"/w/sub/.git"}, ""},
		{"held by a protected ancestor", []string{"/w/.git/hooks/pre-commit"}, []string{"/w/.git/hooks"}, ""},
		{"outside every writable root", []string{"/home/u/.ssh/config"}, nil, ""},
		{"the workspace itself", []string{"/w"}, nil, ""},
		{"a sibling is no cover", []string{"/w/.gitmodules"}, []string{"/w/.git"}, "/w/.gitmodules"},
		{"no prefix confusion", []string{"/w/.git2/config"}, []string{"/w/.git"}, "/w/.git2/config"},
	} {
		if got := vanished(c.missing, c.present, writable, ws, exists); got != c.want {
			t.Errorf("%s: vanished = %q, want %q", c.name, got, c.want)
		}
	}
}

// A protected path that is, or lies below, a link inside a writable root is
// found: the run could remove the link and write the path anew.
func TestLinkOnTheWay(t *testing.T) {
	ws := t.TempDir()
	os.WriteFile(filepath.Join(ws, "envrc.real"), []byte("ok\n"), 0o644)
	os.Symlink("envrc.real", filepath.Join(ws, ".envrc"))
	os.MkdirAll(filepath.Join(ws, "real-git/hooks"), 0o755)
	os.Symlink("real-git", filepath.Join(ws, ".git"))
	os.MkdirAll(filepath.Join(ws, ".vscode"), 0o755)
	for _, c := range []struct{ p, want string }{
		{ws + "/.envrc", ws + "/.envrc"},
		{ws + "/.git/hooks", ws + "/.git"},
		{ws + "/.vscode", ""},
		{ws, ""},
		{"/etc/passwd", ""}, // outside every writable root
	} {
		if got := linkOnTheWay(c.p, []string{ws}, map[string]bool{}); got != c.want {
			t.Errorf("linkOnTheWay(%s) = %q, want %q", c.p, got, c.want)
		}
	}
}
