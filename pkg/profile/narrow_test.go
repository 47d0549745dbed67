package profile

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/wire"
)

func TestCustomProfiles(t *testing.T) {
	f := newFixture(t)
	r := f.resolver(t, false, `
read_deny = ["/srv/secrets"]

[profiles.ci]
extends = "workspace-net"
description = "CI jobs"
write = ["/var/cache/ci"]
read_deny = ["~/.config/ci"]
write_deny = ["/var/cache/ci/locked"]
net_allow = ["proxy.golang.org:443", "*.github.com"]
env_pass = ["GOFLAGS"]
env_set = { GOTOOLCHAIN = "local" }
[profiles.ci.limits]
timeout = "10m"
memory = "4GiB"
pids = 64

[profiles.quiet]
extends = "read-only"
`)
	p, err := r.Resolve(&wire.ResolveRequest{Profile: "ci", Workspace: f.ws})
	if err != nil {
		t.Fatal(err)
	}
	if p.Base != WorkspaceNet || !strings.HasSuffix(p.Source, "profiles.toml") || p.Description != "CI jobs" {
		t.Fatalf("base/source/description = %s %s %s", p.Base, p.Source, p.Description)
	}
	if !slices.Equal(ownWrites(p), []string{f.ws, "/var/cache/ci"}) {
		t.Fatalf("write = %v", p.FS.Write)
	}
	for _, want := range []string{"/srv/secrets", "/etc/shadow"} {
		if !slices.Contains(p.FS.ReadDeny, want) {
			t.Errorf("read deny lacks %s", want)
		}
	}
	if !slices.Contains(p.FS.WriteDeny, "/var/cache/ci/locked") || !slices.Contains(p.FS.WriteDeny, filepath.Join(f.ws, ".git/hooks")) {
		t.Errorf("write deny = %v", p.FS.WriteDeny)
	}
	if p.Net.Mode != wire.NetAllowlist || len(p.Net.Allow) != 2 {
		t.Errorf("net = %+v", p.Net)
	}
	if p.Limits.TimeoutMS != (10*time.Minute).Milliseconds() || p.Limits.MemoryBytes != 4<<30 || p.Limits.Pids != 64 ||
		p.Limits.OutputBytes != DefaultLimits.OutputBytes {
		t.Errorf("limits = %+v", p.Limits)
	}
	if !slices.Contains(p.Env.Pass, "GOFLAGS") || p.Env.Set["GOTOOLCHAIN"] != "local" || p.Env.Set["TMPDIR"] != "/tmp" {
		t.Errorf("env = %+v", p.Env)
	}
	q, err := r.Resolve(&wire.ResolveRequest{Profile: "quiet", Workspace: f.ws})
	if err != nil || q.Base != Offline || len(q.FS.Write) != 0 {
		t.Fatalf("quiet = %+v, %v", q, err)
	}
	names := []string{}
	for _, pi := range r.List().Profiles {
		names = append(names, pi.Name)
	}
	if !slices.Equal(names, []string{"offline", "net-readonly", "workspace-write", "workspace-net", "trusted", "ci", "quiet"}) {
		t.Errorf("list = %v", names)
	}
}

func TestCustomProfileErrors(t *testing.T) {
	tests := []struct {
		toml string
		msg  string
	}{
		{"[profiles.x]\nextends = \"nope\"\n", "extends"},
		{"[profiles.offline]\nextends = \"offline\"\n", "built-in"},
		{"[profiles.read-only]\nextends = \"offline\"\n", "built-in"},
		{"[profiles.Bad_Name]\nextends = \"offline\"\n", "lowercase"},
		{"[profiles.x]\nextends = \"offline\"\nwrite = [\"relative/path\"]\n", "absolute"},
		{"[profiles.x]\nextends = \"offline\"\nbogus = 1\n", "unknown setting"},
		{"[profiles.x]\nextends = \"offline\"\nnet = \"sometimes\"\n", "none, full or allowlist"},
		{"[profiles.x]\nextends = \"offline\"\nnet = \"allowlist\"\n", "needs net_allow"},
		{"[profiles.x]\nextends = \"offline\"\nnet_allow = [\"bad host!\"]\n", "net_allow"},
		{"[profiles.x]\nextends = \"offline\"\nenv_set = { MOAT_BUS = \"x\" }\n", "never reach"},
		{"[profiles.x]\nextends = \"offline\"\n[profiles.x.limits]\nmemory = \"lots\"\n", "size"},
		{"[profiles.x]\nextends = \"offline\"\n[profiles.x.limits]\ntimeout = \"-1s\"\n", "duration"},
		{"[profiles.x\n", "profiles.toml"},
	}
	for _, tt := range tests {
		f := newFixture(t)
		path := filepath.Join(f.moatHome, "profiles.toml")
		write(t, path, tt.toml)
		_, err := NewResolver(Options{MoatHome: f.moatHome, ProfilesFile: path})
		if err == nil || !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), path) {
			t.Errorf("%q: err = %v, want one naming the file and %q", tt.toml, err, tt.msg)
		}
	}
}

func TestReloadKeepsOldOnError(t *testing.T) {
	f := newFixture(t)
	r := f.resolver(t, false, "[profiles.a]\nextends = \"offline\"\n")
	write(t, filepath.Join(f.moatHome, "profiles.toml"), "[profiles.a\n")
	if err := r.Reload(); err == nil {
		t.Fatal("reload of a broken file succeeded")
	}
	if _, err := r.Resolve(&wire.ResolveRequest{Profile: "a", Workspace: f.ws}); err != nil {
		t.Fatalf("old catalog lost: %v", err)
	}
	write(t, filepath.Join(f.moatHome, "profiles.toml"), "[profiles.b]\nextends = \"offline\"\n")
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Resolve(&wire.ResolveRequest{Profile: "b", Workspace: f.ws}); err != nil {
		t.Fatalf("new catalog not in force: %v", err)
	}
}

func TestDirFileNarrows(t *testing.T) {
	f := newFixture(t)
	r := f.resolver(t, true, "")
	parent := filepath.Dir(f.ws)
	tests := []struct {
		name  string
		files map[string]string // dir → .moat-profile content
		ask   string
		check func(t *testing.T, p *wire.Profile)
	}{
		{"ceiling lowers trusted to offline", map[string]string{f.ws: `profile = "offline"`}, "trusted",
			func(t *testing.T, p *wire.Profile) {
				if len(p.FS.Write) != 0 || p.Net.Mode != wire.NetNone || p.Name != Trusted {
					t.Fatalf("got write %v net %s name %s", p.FS.Write, p.Net.Mode, p.Name)
				}
				// The sandbox drops its confinement for base trusted: the
				// meet must not keep it.
				if p.Base != Offline || !slices.Equal(p.FS.Read, ceilingRead(t, f)) {
					t.Fatalf("base %s read %v: want offline's", p.Base, p.FS.Read)
				}
				if p.Limits.TimeoutMS != DefaultLimits.TimeoutMS {
					t.Fatalf("timeout %d not lowered to the ceiling's", p.Limits.TimeoutMS)
				}
			}},
		{"ceiling above the ask changes nothing", map[string]string{f.ws: `profile = "trusted"`}, "offline",
			func(t *testing.T, p *wire.Profile) {
				if len(p.FS.Write) != 0 || p.Net.Mode != wire.NetNone || !slices.Contains(p.FS.ReadDeny, "/etc/shadow") {
					t.Fatalf("widened: %+v", p)
				}
			}},
		{"workspace-net under workspace-write loses network", map[string]string{parent: `profile = "workspace-write"`}, "workspace-net",
			func(t *testing.T, p *wire.Profile) {
				if p.Net.Mode != wire.NetNone || !slices.Equal(ownWrites(p), []string{f.ws}) {
					t.Fatalf("got %+v", p)
				}
			}},
		{"deny lists and limits", map[string]string{f.ws: "read_deny = [\"secrets\", \"/opt/keys\"]\nwrite_deny = [\"vendor\"]\n[limits]\ntimeout = \"5s\"\nmemory = \"64GiB\"\n"}, "workspace-write",
			func(t *testing.T, p *wire.Profile) {
				if !slices.Contains(p.FS.ReadDeny, filepath.Join(f.ws, "secrets")) || !slices.Contains(p.FS.ReadDeny, "/opt/keys") {
					t.Errorf("read deny = %v", p.FS.ReadDeny)
				}
				if !slices.Contains(p.FS.WriteDeny, filepath.Join(f.ws, "vendor")) {
					t.Errorf("write deny = %v", p.FS.WriteDeny)
				}
				if p.Limits.TimeoutMS != 5000 || p.Limits.MemoryBytes != DefaultLimits.MemoryBytes {
					t.Errorf("limits = %+v (a cap may only lower)", p.Limits)
				}
			}},
		{"net allow narrows full", map[string]string{f.ws: `net_allow = ["proxy.golang.org:443"]`}, "net-readonly",
			func(t *testing.T, p *wire.Profile) {
				if p.Net.Mode != wire.NetAllowlist || !slices.Equal(p.Net.Allow, []string{"proxy.golang.org:443"}) {
					t.Fatalf("net = %+v", p.Net)
				}
			}},
		{"net allow cannot open offline", map[string]string{f.ws: `net_allow = ["example.com:443"]`}, "offline",
			func(t *testing.T, p *wire.Profile) {
				if p.Net.Mode != wire.NetNone {
					t.Fatalf("net = %+v", p.Net)
				}
			}},
		{"two files both apply", map[string]string{f.ws: `profile = "workspace-net"`, parent: `profile = "net-readonly"`}, "workspace-net",
			func(t *testing.T, p *wire.Profile) {
				if len(p.FS.Write) != 0 || p.Net.Mode != wire.NetAllowlist || len(p.NarrowedBy) != 2 {
					t.Fatalf("got write %v net %s by %v", p.FS.Write, p.Net.Mode, p.NarrowedBy)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for dir, content := range tt.files {
				write(t, filepath.Join(dir, DirFile), content)
			}
			defer func() {
				for dir := range tt.files {
					os.Remove(filepath.Join(dir, DirFile))
				}
			}()
			p, err := r.Resolve(&wire.ResolveRequest{Profile: tt.ask, Workspace: f.ws})
			if err != nil {
				t.Fatal(err)
			}
			if len(p.NarrowedBy) == 0 {
				t.Fatalf("narrowed_by is empty")
			}
			tt.check(t, p)
		})
	}
}

func TestDirFileRefusals(t *testing.T) {
	f := newFixture(t)
	r := f.resolver(t, false, "")
	tests := []struct {
		content string
		code    int
		msg     string
	}{
		{`write = ["/etc"]`, wire.CodeDenied, "tries to widen"},
		{`net = "full"`, wire.CodeDenied, "tries to widen"},
		{"[env]\nPATH = \"/evil\"\n", wire.CodeDenied, "tries to widen"},
		{`profile = "nonsense"`, wire.CodeBadRequest, "is unknown"},
		{`profile = `, wire.CodeBadRequest, "fix or remove"},
		{"read_deny = [\"\"]", wire.CodeBadRequest, "not a path"},
	}
	for _, tt := range tests {
		write(t, filepath.Join(f.ws, DirFile), tt.content)
		_, err := r.Resolve(&wire.ResolveRequest{Profile: "workspace-write", Workspace: f.ws})
		wantCode(t, err, tt.code, tt.msg)
	}
	// What a run may leave in a subdirectory, for a later resolution there:
	// neither blocks, nor is read past the bound.
	sub := filepath.Join(f.ws, "sub")
	os.MkdirAll(sub, 0o755)
	os.Remove(filepath.Join(f.ws, DirFile))
	for name, plant := range map[string]func(string) error{
		"a FIFO":              func(p string) error { return syscall.Mkfifo(p, 0o644) },
		"a link to /dev/zero": func(p string) error { return os.Symlink("/dev/zero", p) },
		"a file of 1 MiB":     func(p string) error { return os.WriteFile(p, make([]byte, 1<<20), 0o644) },
	} {
		path := filepath.Join(sub, DirFile)
		os.Remove(path)
		if err := plant(path); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := r.Resolve(&wire.ResolveRequest{Profile: "workspace-write", Workspace: sub})
			done <- err
		}()
		select {
		case err := <-done:
			wantCode(t, err, wire.CodeBadRequest, "fix or remove")
		case <-time.After(20 * time.Second):
			t.Fatalf("%s as %s: the resolution still reads it after 20 s", name, DirFile)
		}
	}
	os.Remove(filepath.Join(sub, DirFile))
	if os.Geteuid() != 0 { // root reads any file; the unreadable case needs a user
		write(t, filepath.Join(f.ws, DirFile), `profile = "offline"`)
		os.Chmod(filepath.Join(f.ws, DirFile), 0)
		_, err := r.Resolve(&wire.ResolveRequest{Profile: "workspace-write", Workspace: f.ws})
		wantCode(t, err, wire.CodeDenied, "cannot read")
	}
}

func TestMeetIsCommutativeAndNarrowing(t *testing.T) {
	f := newFixture(t)
	r := f.resolver(t, true, "")
	var ps []*wire.Profile
	for _, n := range BuiltinNames {
		p, err := r.Resolve(&wire.ResolveRequest{Profile: n, Workspace: f.ws})
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	rank := map[string]int{wire.NetNone: 0, wire.NetAllowlist: 1, wire.NetFull: 2}
	for _, a := range ps {
		for _, b := range ps {
			ab, ba := Meet(a, b), Meet(b, a)
			if !slices.Equal(ab.FS.Write, ba.FS.Write) || ab.Net.Mode != ba.Net.Mode || ab.Limits != ba.Limits {
				t.Errorf("meet(%s,%s) is not commutative", a.Name, b.Name)
			}
			for _, x := range []*wire.Profile{a, b} {
				if rank[ab.Net.Mode] > rank[x.Net.Mode] || len(ab.FS.ReadDeny) < len(x.FS.ReadDeny) {
					t.Errorf("meet(%s,%s) is wider than %s", a.Name, b.Name, x.Name)
				}
				for _, w := range ab.FS.Write {
					if !slices.ContainsFunc(x.FS.Write, func(root string) bool { return within(w, root) }) {
						t.Errorf("meet(%s,%s) writes %s, which %s does not", a.Name, b.Name, w, x.Name)
					}
				}
			}
		}
	}
}

func TestSizes(t *testing.T) {
	for in, want := range map[string]int64{"512MiB": 512 << 20, "1GiB": 1 << 30, "100M": 100 << 20, "64k": 64 << 10, "10": 10, "2GB": 2e9} {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "0", "1XB", "99999999999TiB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

// ceilingRead is offline's read set in f's workspace.
func ceilingRead(t *testing.T, f fixture) []string {
	t.Helper()
	p, err := f.resolver(t, true, "").Resolve(&wire.ResolveRequest{Profile: Offline, Workspace: f.ws})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.FS.Read) == 0 {
		t.Fatal("offline reads nothing beyond the system")
	}
	return p.FS.Read
}

// TestMeetKeepsTheStricterIrreversible: what policyd makes of irreversible
// operations narrows like everything else: a ceiling that denies them
// denies them in the meet, whichever side it is on (allow < prompt < deny).
func TestMeetKeepsTheStricterIrreversible(t *testing.T) {
	for _, tc := range []struct{ a, b, want string }{
		{"allow", "deny", "deny"},
		{"", "deny", "deny"},
		{"allow", "", ""}, // unset is prompt
		{"allow", "prompt", "prompt"},
		{"allow", "allow", "allow"},
		{"", "", ""},
	} {
		a := &wire.Profile{Name: "a", Irreversible: tc.a}
		b := &wire.Profile{Name: "b", Irreversible: tc.b}
		for _, m := range []*wire.Profile{Meet(a, b), Meet(b, a)} {
			if m.Irreversible != tc.want {
				t.Errorf("meet of irreversible %q and %q: %q, want %q", tc.a, tc.b, m.Irreversible, tc.want)
			}
		}
	}
}
