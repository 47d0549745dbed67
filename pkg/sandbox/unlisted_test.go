//go:build linux

package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/moatsec/moat/pkg/wire"
)

// TestUnlistedDirRefuses: a directory of the workspace sandboxd cannot
// list (root reads every directory but on some network and FUSE
// filesystems) may hold a git directory the run could then rewrite — a
// core.fsmonitor git runs later on the host. The run is refused, naming
// it, and nothing runs; once it can be listed, runs go on.
func TestUnlistedDirRefuses(t *testing.T) {
	ws, p := initWorkspace(t, "workspace-write")
	locked := filepath.Join(ws, "vendor")
	for _, f := range []string{"vendor/lib/.git/HEAD", "vendor/lib/.git/config"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(ws, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(ws, f), []byte("ref: refs/heads/main\n"), 0o644)
	}
	defer func(f func(string) ([]os.DirEntry, error)) { readDir = f }(readDir)
	readDir = func(dir string) ([]os.DirEntry, error) {
		if dir == locked {
			return nil, &os.PathError{Op: "open", Path: dir, Err: syscall.EACCES}
		}
		return os.ReadDir(dir)
	}
	marker := filepath.Join(ws, "ran")
	spec := func() *Spec {
		return &Spec{Argv: []string{"sh", "-c", "touch " + marker + "; echo '[core] fsmonitor = touch /tmp/pwned' >> vendor/lib/.git/config"}, Profile: p}
	}
	_, err := Run(context.Background(), spec())
	if err == nil || !strings.Contains(err.Error(), "cannot list "+locked) {
		t.Fatalf("run with an unlistable directory: %v, want refused naming %s", err, locked)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("the command ran: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(ws, "vendor/lib/.git/config")); strings.Contains(string(b), "fsmonitor") {
		t.Fatalf("the config was written: %q", b)
	}

	readDir = os.ReadDir
	res, err := Run(context.Background(), spec())
	if err != nil {
		t.Fatalf("once listable: %v", err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("once listable, the command did not run: %v (%+v)", err, res)
	}
	if b, _ := os.ReadFile(filepath.Join(ws, "vendor/lib/.git/config")); strings.Contains(string(b), "fsmonitor") {
		t.Fatalf("once listable, the nested repository's config was not held: %q", b)
	}
}

// TestUnlistedAfterRun: a directory that cannot be listed after the run
// (a run whose user is sandboxd's can chmod 000 what it made), or can be
// listed but not searched (chmod 0444), could hide a git directory or a
// guarded file it planted: the check finds it, so it is taken out.
func TestUnlistedAfterRun(t *testing.T) {
	defer func(f func(string) ([]os.DirEntry, error)) { readDir = f }(readDir)
	defer func(f func(string) bool) { searchable = f }(searchable)
	for _, unlisted := range []bool{true, false} {
		ws := t.TempDir()
		p := &wire.Profile{Workspace: ws, FS: wire.FS{Write: []string{ws}}}
		w := begin(p)
		put(t, ws+"/sub/.git/HEAD", "ref: refs/heads/main\n")
		put(t, ws+"/sub/.git/config", "[core]\n\tfsmonitor = touch /tmp/pwned\n")
		put(t, ws+"/sub/.husky/pre-commit", "touch /x\n")
		readDir = func(dir string) ([]os.DirEntry, error) {
			if unlisted && dir == ws+"/sub" {
				return nil, &os.PathError{Op: "open", Path: dir, Err: syscall.EACCES}
			}
			return os.ReadDir(dir)
		}
		searchable = func(dir string) bool { return unlisted || dir != ws+"/sub" }
		wantFound(t, w.check(), ws+"/sub")
	}
}
