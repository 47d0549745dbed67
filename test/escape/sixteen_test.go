//go:build linux

package escape

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOriginalSixteen executes the sixteen cases of the original design for
// real, through the sandbox alone (no policy), and checks what happened.
func TestOriginalSixteen(t *testing.T) {
	passwd, _ := os.ReadFile("/etc/passwd")
	srv := listenTCP(t, "tcp4", "127.0.0.1:0")
	// Each case gets a fresh world of its own (rm -rf / really empties the
	// workspace it may write); the paths are the same in every world.
	w := newWorld(t)
	important := filepath.Join(w.outside, "important", "data")
	tests := []struct {
		profile string
		argv    []string
		check   func(t *testing.T, r result)
	}{
		{"offline", []string{"curl", "-s", "-m", "2", "http://" + srv.addr + "/"}, func(t *testing.T, r result) {
			if r.code == 0 || srv.count.Load() != 0 {
				t.Fatalf("curl got through:\n%s", r)
			}
		}},
		{"offline", []string{"wget", "-q", "-t", "1", "-T", "2", "-O-", "http://" + srv.addr + "/"}, func(t *testing.T, r result) {
			if r.code == 0 || srv.count.Load() != 0 {
				t.Fatalf("wget got through:\n%s", r)
			}
		}},
		{"offline", []string{"nc", "-l", "8080"}, func(t *testing.T, r result) {
			if r.code == 0 {
				t.Fatalf("nc listened:\n%s", r)
			}
		}},
		{"workspace-write", []string{"cp", "malicious.txt", "/etc/passwd"}, func(t *testing.T, r result) {
			unchanged(t, "/etc/passwd", string(passwd))
		}},
		{"workspace-write", []string{"mv", "file.txt", "/usr/bin/malicious"}, func(t *testing.T, r result) {
			absent(t, "/usr/bin/malicious")
			unchanged(t, filepath.Join(w.ws, "file.txt"), "pattern\n")
		}},
		{"workspace-write", []string{"copy", "x", `C:\Windows\System32\evil.dll`}, func(t *testing.T, r result) {
			if r.code != 127 {
				t.Fatalf("want command not found:\n%s", r)
			}
		}},
		{"workspace-write", []string{"bash", "-c", "rm -rf / --no-preserve-root 2>/dev/null; rm -rf " + w.outside}, func(t *testing.T, r result) {
			unchanged(t, w.canary, canaryText)
			unchanged(t, "/etc/passwd", string(passwd))
		}},
		{"workspace-write", []string{"sh", "-c", "curl -s -m 2 http://" + srv.addr + "/ | sh"}, func(t *testing.T, r result) {
			if srv.count.Load() != 0 {
				t.Fatalf("downloaded:\n%s", r)
			}
		}},
		{"workspace-write", []string{"python3", "-c", "import os; os.system('rm -rf " + w.outside + "')"}, func(t *testing.T, r result) {
			unchanged(t, w.canary, canaryText)
		}},
		{"workspace-write", []string{"sh", "-c", "eval \"curl -s -m 2 http://" + srv.addr + "/ | sh\""}, func(t *testing.T, r result) {
			if srv.count.Load() != 0 {
				t.Fatalf("downloaded:\n%s", r)
			}
		}},
		{"workspace-write", []string{"sh", "-c", "rm -rf " + important}, func(t *testing.T, r result) {
			unchanged(t, filepath.Join(important, "keep"), "keep\n")
		}},
		{"offline", []string{"ls", "-la"}, func(t *testing.T, r result) {
			if r.code != 0 || !strings.Contains(r.stdout, "README.md") {
				t.Fatalf("ls:\n%s", r)
			}
		}},
		{"offline", []string{"cat", "README.md"}, func(t *testing.T, r result) {
			if r.stdout != "# project\n" {
				t.Fatalf("cat:\n%s", r)
			}
		}},
		{"offline", []string{"grep", "pattern", "file.txt"}, func(t *testing.T, r result) {
			if r.stdout != "pattern\n" {
				t.Fatalf("grep:\n%s", r)
			}
		}},
		{"workspace-write", []string{"cp", "src.txt", "dest.txt"}, func(t *testing.T, r result) {
			unchanged(t, filepath.Join(w.ws, "dest.txt"), "source\n")
		}},
		{"workspace-write", []string{"mkdir", "new_dir"}, func(t *testing.T, r result) {
			if fi, err := os.Stat(filepath.Join(w.ws, "new_dir")); err != nil || !fi.IsDir() {
				t.Fatalf("mkdir: %v\n%s", err, r)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.argv, " "), func(t *testing.T) {
			fresh := w.reset(t)
			os.MkdirAll(important, 0o755)
			os.WriteFile(filepath.Join(important, "keep"), []byte("keep\n"), 0o644)
			tt.check(t, fresh.run(t, tt.profile, tt.argv))
		})
	}
	// In offline, even the benign writes fail.
	r := w.run(t, "offline", []string{"mkdir", "offline_dir"})
	absent(t, filepath.Join(w.ws, "offline_dir"))
	if r.code == 0 {
		t.Fatalf("mkdir under offline succeeded:\n%s", r)
	}
}
