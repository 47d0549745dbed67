package home

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInit(t *testing.T) {
	h, _ := New(filepath.Join(t.TempDir(), "moat"))
	if err := h.Init(false); err != nil {
		t.Fatal(err)
	}
	keys, err := h.PublicKeys()
	if err != nil || len(keys) != len(Roles) {
		t.Fatalf("keys = %v, %v", keys, err)
	}
	seen := map[string]bool{}
	for role, pub := range keys {
		if !strings.HasPrefix(pub, "U") || seen[pub] {
			t.Errorf("%s: key %s is not a fresh user key", role, pub)
		}
		seen[pub] = true
		fi, err := os.Stat(h.Creds(role))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: creds mode %v, %v", role, fi.Mode(), err)
		}
	}
	for _, p := range []string{h.HMACKey(), h.SigningKey()} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", p, fi, err)
		}
	}
	for _, d := range []string{h.Dir, h.CredsDir(), h.KeysDir(), h.RulesDir(), h.BusDir(), h.AuditDir()} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v", d, fi, err)
		}
	}
	// A second init refuses and changes nothing; --force replaces every key.
	if err := h.Init(false); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second init: %v", err)
	}
	again, _ := h.PublicKeys()
	if again[RoleClient] != keys[RoleClient] {
		t.Fatal("a refused init changed a key")
	}
	if err := h.Init(true); err != nil {
		t.Fatal(err)
	}
	forced, _ := h.PublicKeys()
	if forced[RoleClient] == keys[RoleClient] {
		t.Fatal("--force kept the old key")
	}
}

func TestPublicKeysFailsClosed(t *testing.T) {
	h, _ := New(t.TempDir())
	if _, err := h.PublicKeys(); err == nil || !strings.Contains(err.Error(), "moat init") {
		t.Fatalf("err = %v", err)
	}
	h.Init(false)
	os.WriteFile(h.Creds(RoleAuditd), []byte("garbage"), 0o600)
	if _, err := h.PublicKeys(); err == nil || !strings.Contains(err.Error(), "auditd") {
		t.Fatalf("err = %v", err)
	}
}

func TestDefaultDirIsPerUserNotCwd(t *testing.T) {
	base := t.TempDir()
	t.Setenv(EnvHome, "")
	t.Setenv("HOME", filepath.Join(base, "alice"))
	t.Setenv("XDG_STATE_HOME", "")
	want := filepath.Join(base, "alice", ".local", "state", "moat")
	for _, cwd := range []string{base, os.TempDir(), "/"} {
		t.Chdir(cwd)
		h, err := FromEnv()
		if err != nil || h.Dir != want {
			t.Fatalf("from %s: home %q, %v; want %q", cwd, h.Dir, err, want)
		}
	}
	t.Setenv("XDG_STATE_HOME", "relative/state") // the spec says relative values are ignored
	if h, _ := FromEnv(); h.Dir != want {
		t.Fatalf("relative XDG_STATE_HOME used: %q", h.Dir)
	}
	t.Setenv("XDG_STATE_HOME", filepath.Join(base, "state"))
	if h, _ := FromEnv(); h.Dir != filepath.Join(base, "state", "moat") {
		t.Fatalf("XDG_STATE_HOME ignored: %q", h.Dir)
	}
	t.Setenv(EnvHome, filepath.Join(base, "explicit"))
	if h, _ := FromEnv(); h.Dir != filepath.Join(base, "explicit") {
		t.Fatalf("MOAT_HOME ignored: %q", h.Dir)
	}
}
