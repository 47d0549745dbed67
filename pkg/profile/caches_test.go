package profile

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moatsec/moat/pkg/wire"
)

// ownWrites is p's write roots without its cache directories.
func ownWrites(p *wire.Profile) []string {
	var out []string
	for _, w := range p.FS.Write {
		if !slices.ContainsFunc(p.Caches, func(c wire.Cache) bool { return c.Dir == w }) {
			out = append(out, w)
		}
	}
	return out
}

func TestCaches(t *testing.T) {
	f := newFixture(t)
	home := OwnerHome(f.ws)
	if home == "" {
		t.Fatal("the fixture's owner has no home")
	}
	r := f.resolver(t, true, `
[profiles.go-only]
extends = "workspace-write"
caches = ["go"]
cache_scope = "workspace"

[profiles.none]
extends = "workspace-net"
caches = []
`)
	resolve := func(name, ws string) *wire.Profile {
		t.Helper()
		p, err := r.Resolve(&wire.ResolveRequest{Profile: name, Workspace: ws})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	userRoot := filepath.Join(home, ".cache", "moat", "user")
	for _, name := range []string{WorkspaceWrite, WorkspaceNet} {
		p := resolve(name, f.ws)
		if len(p.Caches) != 8 {
			t.Fatalf("%s caches %v", name, p.Caches)
		}
		for _, c := range p.Caches {
			if !within(c.Dir, userRoot) || !slices.Contains(p.FS.Write, c.Dir) {
				t.Errorf("%s: cache %+v outside %s or not writable", name, c, userRoot)
			}
		}
		for k, want := range map[string]string{"GOCACHE": "go-build", "GOMODCACHE": "go-mod", "npm_config_cache": "npm",
			"PIP_CACHE_DIR": "pip", "CARGO_HOME": "cargo", "XDG_CACHE_HOME": "xdg", "GRADLE_USER_HOME": "gradle"} {
			if p.Env.Set[k] != filepath.Join(userRoot, want) {
				t.Errorf("%s: %s=%q", name, k, p.Env.Set[k])
			}
		}
		if p.Env.Set["MAVEN_OPTS"] != "-Dmaven.repo.local="+filepath.Join(userRoot, "m2") {
			t.Errorf("%s: MAVEN_OPTS=%q", name, p.Env.Set["MAVEN_OPTS"])
		}
		// The host's own caches stay read-only.
		for _, real := range []string{filepath.Join(home, ".cache", "go-build"), filepath.Join(home, "go", "pkg", "mod"), filepath.Join(home, ".npm")} {
			if slices.ContainsFunc(p.FS.Write, func(w string) bool { return within(real, w) }) {
				t.Errorf("%s: the host's %s is writable", name, real)
			}
		}
	}
	for _, name := range []string{Offline, NetReadonly, Trusted, "none"} {
		if p := resolve(name, f.ws); len(p.Caches) != 0 || p.Env.Set["GOCACHE"] != "" {
			t.Errorf("%s has caches %v, GOCACHE=%q", name, p.Caches, p.Env.Set["GOCACHE"])
		}
	}
	// Per-workspace scope: each workspace its own directory.
	other := filepath.Join(filepath.Dir(f.ws), "other")
	write(t, filepath.Join(other, "x"), "")
	a, b := resolve("go-only", f.ws), resolve("go-only", other)
	if len(a.Caches) != 2 || a.Caches[0].Name != "go" || a.Env.Set["npm_config_cache"] != "" {
		t.Fatalf("go-only: %+v %v", a.Caches, a.Env.Set)
	}
	if a.Caches[0].Dir == b.Caches[0].Dir || within(a.Caches[0].Dir, userRoot) {
		t.Fatalf("workspace scope shares %s", a.Caches[0].Dir)
	}
	// A .moat-profile that narrows to offline takes the caches and their
	// variables away: no toolchain is pointed at a directory it cannot write.
	write(t, filepath.Join(f.ws, DirFile), `profile = "offline"`)
	p := resolve(WorkspaceWrite, f.ws)
	if len(p.Caches) != 0 || len(p.FS.Write) != 0 || p.Env.Set["GOCACHE"] != "" || p.Env.Set["TMPDIR"] != "/tmp" {
		t.Fatalf("narrowed to offline: caches %v write %v env %v", p.Caches, p.FS.Write, p.Env.Set)
	}
}

func TestCachesConfigErrors(t *testing.T) {
	for _, tc := range []struct{ toml, want string }{
		{"[profiles.x]\nextends = \"workspace-write\"\ncaches = [\"bogus\"]\n", "not a cache moat manages"},
		{"[profiles.x]\nextends = \"workspace-write\"\ncache_scope = \"machine\"\n", "cache_scope"},
		{"[profiles.x]\nextends = \"offline\"\ncaches = [\"go\"]\n", "writes nothing"},
	} {
		f := newFixture(t)
		path := filepath.Join(f.moatHome, "profiles.toml")
		write(t, path, tc.toml)
		if _, err := NewResolver(Options{MoatHome: f.moatHome, ProfilesFile: path}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.toml, err, tc.want)
		}
	}
}
