//go:build linux

package sandbox

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moatsec/moat/pkg/wire"
)

// TestPathDenials runs commands that fail at what the sandbox's filesystem
// rules refuse — a write outside the writable roots, to a git hook, to a
// write_deny entry, a read of a read_deny directory and of a path outside
// what a run sees — and checks that the run names the path and the rule,
// and that the write did not happen. Failures the rules did not cause, and
// runs that succeed, name nothing.
func TestPathDenials(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("git is needed: apt-get install git")
	}
	ws, p := initWorkspace(t, "workspace-write")
	base := filepath.Dir(ws)
	if out, err := exec.Command("git", "init", "-q", ws).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v %s", err, out)
	}
	os.MkdirAll(filepath.Join(ws, "secrets"), 0o755)
	os.WriteFile(filepath.Join(ws, "secrets", "key"), []byte("k"), 0o644)
	os.WriteFile(filepath.Join(ws, "locked.txt"), []byte("as it was\n"), 0o644)
	os.MkdirAll(filepath.Join(ws, ".husky"), 0o755)
	os.WriteFile(filepath.Join(ws, ".husky", "pre-commit"), []byte("npm test\n"), 0o644)
	os.WriteFile(filepath.Join(base, "outside.txt"), []byte("host\n"), 0o644)
	q := *p
	q.FS.ReadDeny = append(slices.Clone(p.FS.ReadDeny), filepath.Join(ws, "secrets"))
	q.FS.WriteDeny = append(slices.Clone(p.FS.WriteDeny), filepath.Join(ws, "locked.txt"))

	reasons := map[string]string{"guarded": "guarded: a tool on the host runs commands from .husky"}
	for _, tc := range []struct {
		name   string
		argv   []string
		want   *wire.PathDenial // nil: nothing named
		absent string           // a file the command must not have made
	}{
		{"outside the writable roots", []string{"touch", "/etc/moat-pathdeny"},
			&wire.PathDenial{Path: "/etc/moat-pathdeny", Access: "write", Error: "EROFS", Rule: "write"}, "/etc/moat-pathdeny"},
		{"git hook, by a relative path", []string{"sh", "-c", "echo x > .git/hooks/pre-commit"},
			&wire.PathDenial{Path: filepath.Join(ws, ".git/hooks/pre-commit"), Access: "write", Error: "EROFS", Rule: "write_deny",
				Entry: filepath.Join(ws, ".git/hooks")}, filepath.Join(ws, ".git/hooks/pre-commit")},
		{"write_deny", []string{"python3", "-c", "open('locked.txt', 'w')"},
			&wire.PathDenial{Path: filepath.Join(ws, "locked.txt"), Access: "write", Error: "EROFS", Rule: "write_deny",
				Entry: filepath.Join(ws, "locked.txt")}, ""},
		{"guarded", []string{"sh", "-c", "echo x > .husky/pre-commit"},
			&wire.PathDenial{Path: filepath.Join(ws, ".husky/pre-commit"), Access: "write", Error: "EROFS", Rule: "write_deny",
				Entry: filepath.Join(ws, ".husky")}, ""},
		{"read_deny", []string{"ls", "secrets"},
			&wire.PathDenial{Path: filepath.Join(ws, "secrets"), Access: "read", Error: "EACCES", Rule: "read_deny",
				Entry: filepath.Join(ws, "secrets")}, ""},
		{"outside what a run sees", []string{"cat", filepath.Join(base, "outside.txt")},
			&wire.PathDenial{Path: filepath.Join(base, "outside.txt"), Access: "read", Error: "ENOENT", Rule: "read"}, ""},
		{"a missing file of the workspace", []string{"cat", "missing.txt"}, nil, ""},
		{"a run that succeeds", []string{"sh", "-c", "echo \"touch: cannot touch '/etc/x': Read-only file system\" >&2"}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runIn(t, &q, 0, tc.argv...)
			if tc.want == nil {
				if len(res.Paths) != 0 {
					t.Fatalf("named %+v (stderr %q)", res.Paths, res.Stderr)
				}
				return
			}
			if res.ExitCode == 0 || len(res.Paths) != 1 {
				t.Fatalf("exit %d, paths %+v, stderr %q", res.ExitCode, res.Paths, res.Stderr)
			}
			got := res.Paths[0]
			if want := reasons[tc.name]; !strings.Contains(got.Reason, want) {
				t.Errorf("reason %q, want it to say %q", got.Reason, want)
			}
			got.Reason = ""
			if got != *tc.want {
				t.Fatalf("named %+v, want %+v (stderr %q)", res.Paths[0], *tc.want, res.Stderr)
			}
			if tc.absent != "" {
				if _, err := os.Stat(tc.absent); err == nil {
					t.Fatalf("%s was made", tc.absent)
				}
			}
		})
	}
	if b, _ := os.ReadFile(filepath.Join(ws, "locked.txt")); string(b) != "as it was\n" {
		t.Fatalf("locked.txt changed: %q", b)
	}
}

// TestPathsIn reads the messages tools print for these errors.
func TestPathsIn(t *testing.T) {
	for line, want := range map[string][]string{
		"touch: cannot touch '/etc/x': Read-only file system":                  {"/etc/x"},
		"mkdir: cannot create directory ‘.git/hooks/y’: Read-only file system": {".git/hooks/y"},
		"sh: 1: cannot create /etc/x: Read-only file system":                   {"/etc/x"},
		"bash: line 1: /usr/x: Read-only file system":                          {"/usr/x"},
		"OSError: [Errno 30] Read-only file system: '/etc/y'":                  {"/etc/y"},
		"cat: /root/.aws/credentials: No such file or directory":               {"/root/.aws/credentials"},
		"error: could not lock config file .git/config: Permission denied":     {".git/config"},
		"Permission denied": nil,
		"ssh: connect to host h port 22: Permission denied": {"22"},
	} {
		i := -1
		for _, e := range fsErrors {
			if j := strings.Index(line, e.msg); j >= 0 {
				i = j
			}
		}
		if got := pathsIn(line, i); !slices.Equal(got, want) {
			t.Errorf("%q: %q, want %q", line, got, want)
		}
	}
}
