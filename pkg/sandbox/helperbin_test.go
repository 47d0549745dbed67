//go:build linux

package sandbox

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelperBinary: a binary that runs sandboxes refuses, saying how to
// fix it, when the helper next to it is missing, not executable, or
// writable by others; a sound one is opened.
func TestHelperBinary(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self := filepath.Join(dir, "sandboxd")
	helper := filepath.Join(dir, HelperName)
	for _, tc := range []struct {
		name string
		mode os.FileMode // 0: no helper
		want string
	}{
		{"missing", 0, "go build -o " + dir + "/ ./cmd/..."},
		{"not executable", 0o644, "not an executable file"},
		{"group-writable", 0o775, "chmod go-w"},
		{"sound", 0o755, ""},
	} {
		os.Remove(helper)
		if tc.mode != 0 {
			if err := os.WriteFile(helper, []byte("#!/bin/sh\n"), tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(helper, tc.mode); err != nil { // past the umask
				t.Fatal(err)
			}
		}
		f, err := openHelperIn(self)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			} else {
				f.Close()
			}
			continue
		}
		if err == nil {
			f.Close()
			t.Errorf("%s: opened, want a refusal", tc.name)
		} else if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a refusal saying %q", tc.name, err, tc.want)
		}
	}
}
