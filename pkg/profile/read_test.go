package profile

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/moatsec/moat/pkg/wire"
)

// TestReadSet: what a profile reads beyond the system — the default
// per-user configuration, a custom profile's read entries (listed even when
// missing, never created), nothing for trusted; a .moat-profile can narrow it
// through a ceiling but cannot add to it.
func TestReadSet(t *testing.T) {
	f := newFixture(t)
	home := OwnerHome(f.ws)
	data := filepath.Join(filepath.Dir(f.moatHome), "data")
	missing := filepath.Join(filepath.Dir(f.moatHome), "missing")
	r := f.resolver(t, true, "[profiles.reader]\nextends = \"workspace-write\"\nread = ["+
		`"`+data+`", "`+missing+`", "~/.config/tool"]`+"\n")
	resolve := func(name string) *wire.Profile {
		t.Helper()
		p, err := r.Resolve(&wire.ResolveRequest{Profile: name, Workspace: f.ws})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	defaults := []string{filepath.Join(home, ".config/git"), filepath.Join(home, ".config/go/env"), filepath.Join(home, ".gitconfig")}
	if got := resolve("offline").FS.Read; !slices.Equal(got, defaults) {
		t.Fatalf("offline reads %v, want %v", got, defaults)
	}
	if got := resolve("trusted").FS.Read; len(got) != 0 {
		t.Fatalf("trusted lists a read set %v: it reads everything", got)
	}
	got := resolve("reader").FS.Read
	for _, want := range append(slices.Clone(defaults), data, missing, filepath.Join(home, ".config/tool")) {
		if !slices.Contains(got, want) {
			t.Fatalf("reader reads %v, missing %s", got, want)
		}
	}
	if _, err := os.Stat(missing); err == nil {
		t.Fatalf("resolving made %s", missing)
	}

	// A ceiling narrows the read set to what both read.
	write(t, filepath.Join(f.ws, DirFile), `profile = "workspace-write"`)
	if got := resolve("reader").FS.Read; !slices.Equal(got, defaults) {
		t.Fatalf("reader under a workspace-write ceiling reads %v, want %v", got, defaults)
	}
	// A .moat-profile cannot add to it.
	write(t, filepath.Join(f.ws, DirFile), `read = ["/srv"]`)
	_, err := r.Resolve(&wire.ResolveRequest{Profile: "offline", Workspace: f.ws})
	wantCode(t, err, wire.CodeDenied, "read")
}

// TestReadKeyChecked: read entries must be absolute or start with ~/.
func TestReadKeyChecked(t *testing.T) {
	f := newFixture(t)
	path := filepath.Join(f.moatHome, "profiles.toml")
	write(t, path, "[profiles.bad]\nextends = \"offline\"\nread = [\"relative/dir\"]\n")
	if _, err := NewResolver(Options{MoatHome: f.moatHome, ProfilesFile: path}); err == nil {
		t.Fatal("a relative read entry was accepted")
	}
}
