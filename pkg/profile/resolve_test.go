package profile

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moatsec/moat/pkg/wire"
)

// fixture is a MOAT_HOME and a workspace under one temporary directory.
type fixture struct {
	moatHome, ws string
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := fixture{moatHome: filepath.Join(root, "moat-home"), ws: filepath.Join(root, "proj", "ws")}
	for _, d := range []string{f.moatHome, filepath.Join(f.ws, "src")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f fixture) resolver(t testing.TB, trusted bool, profilesTOML string) *Resolver {
	t.Helper()
	opts := Options{MoatHome: f.moatHome, AllowTrusted: trusted}
	if profilesTOML != "" {
		opts.ProfilesFile = filepath.Join(f.moatHome, "profiles.toml")
		write(t, opts.ProfilesFile, profilesTOML)
	}
	r, err := NewResolver(opts)
	if err != nil {
		t.Fatalf("NewResolver: %v", err)
	}
	return r
}

func write(t testing.TB, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func wantCode(t *testing.T, err error, code int, substr string) {
	t.Helper()
	var we *wire.Error
	if !errors.As(err, &we) {
		t.Fatalf("err = %v, want a %d", err, code)
	}
	if we.Code != code || !strings.Contains(we.Message, substr) {
		t.Fatalf("err = %d %q, want %d containing %q", we.Code, we.Message, code, substr)
	}
}

func TestBuiltinsAndAliases(t *testing.T) {
	f := newFixture(t)
	r := f.resolver(t, true, "")
	tests := []struct {
		name      string
		wantName  string
		wantWrite []string
		wantNet   string
	}{
		{"", Offline, []string{}, wire.NetNone},
		{"offline", Offline, []string{}, wire.NetNone},
		{"read-only", Offline, []string{}, wire.NetNone},
		{"readonly", Offline, []string{}, wire.NetNone},
		{"net-readonly", NetReadonly, []string{}, wire.NetFull},
		{"net-read-only", NetReadonly, []string{}, wire.NetFull},
		{"read-net", NetReadonly, []string{}, wire.NetFull},
		{"workspace-write", WorkspaceWrite, []string{f.ws}, wire.NetNone},
		{"workspace", WorkspaceWrite, []string{f.ws}, wire.NetNone},
		{"workspace-net", WorkspaceNet, []string{f.ws}, wire.NetAllowlist},
		{"trusted", Trusted, []string{"/"}, wire.NetFull},
		{"danger-full-access", Trusted, []string{"/"}, wire.NetFull},
		{"full-access", Trusted, []string{"/"}, wire.NetFull},
	}
	for _, tt := range tests {
		t.Run("name="+tt.name, func(t *testing.T) {
			p, err := r.Resolve(&wire.ResolveRequest{Profile: tt.name, Workspace: f.ws})
			if err != nil {
				t.Fatal(err)
			}
			if p.Name != tt.wantName || p.Net.Mode != tt.wantNet || !slices.Equal(ownWrites(p), tt.wantWrite) {
				t.Fatalf("got name %s write %v net %s; want %s %v %s", p.Name, p.FS.Write, p.Net.Mode, tt.wantName, tt.wantWrite, tt.wantNet)
			}
			if p.Workspace != f.ws || p.Cwd != f.ws {
				t.Fatalf("workspace/cwd = %s %s", p.Workspace, p.Cwd)
			}
			if p.Limits.TimeoutMS <= 0 || p.Limits.MemoryBytes <= 0 || p.Limits.Pids <= 0 || p.Limits.CPUMS <= 0 ||
				p.Limits.OutputBytes <= 0 || p.Limits.FileBytes <= 0 {
				t.Fatalf("a limit is unset: %+v", p.Limits)
			}
			if !slices.Contains(p.FS.WriteDeny, f.moatHome) {
				t.Fatalf("MOAT_HOME %s not write-denied: %v", f.moatHome, p.FS.WriteDeny)
			}
			if p.Name == Trusted {
				if !slices.Contains(p.FS.ReadDeny, filepath.Join(f.moatHome, "creds")) || slices.Contains(p.FS.ReadDeny, "/etc/shadow") {
					t.Fatalf("trusted read deny = %v, want only moat's secrets", p.FS.ReadDeny)
				}
			} else if !slices.Contains(p.FS.ReadDeny, f.moatHome) || !slices.Contains(p.FS.ReadDeny, "/etc/shadow") {
				t.Fatalf("read deny lacks MOAT_HOME or /etc/shadow: %v", p.FS.ReadDeny)
			}
			for _, e := range p.Env.Pass {
				if strings.HasPrefix(e, "MOAT_") || strings.HasPrefix(e, "NATS_") || strings.Contains(e, "TOKEN") {
					t.Fatalf("env pass %s leaks credentials", e)
				}
			}
		})
	}
}

func TestReadDenyCoversHomes(t *testing.T) {
	f := newFixture(t)
	t.Setenv("HOME", filepath.Join(filepath.Dir(f.ws), "fakehome"))
	r := f.resolver(t, false, "")
	p, err := r.Resolve(&wire.ResolveRequest{Profile: "offline", Workspace: f.ws})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"/.ssh", "/.aws", "/.gnupg", "/.config/gh", "/.netrc", "/.docker/config.json"} {
		if !slices.Contains(p.FS.ReadDeny, filepath.Join(filepath.Dir(f.ws), "fakehome")+want) {
			t.Errorf("read deny lacks ~%s under $HOME: %v", want, p.FS.ReadDeny)
		}
	}
}

func TestProtectedPathsInWritableWorkspace(t *testing.T) {
	f := newFixture(t)
	r := f.resolver(t, false, "")
	for _, name := range []string{"workspace-write", "workspace-net"} {
		p, err := r.Resolve(&wire.ResolveRequest{Profile: name, Workspace: f.ws})
		if err != nil {
			t.Fatal(err)
		}
		for _, rel := range []string{".git/hooks", ".git/config", ".moat", ".codex", ".vscode", ".envrc", ".moat-profile"} {
			if !slices.Contains(p.FS.WriteDeny, filepath.Join(f.ws, rel)) {
				t.Errorf("%s: %s not write-denied (even though it does not exist)", name, rel)
			}
		}
	}
}

func TestTrustedNeedsFlag(t *testing.T) {
	f := newFixture(t)
	r := f.resolver(t, false, "[profiles.admin]\nextends = \"trusted\"\n")
	for _, name := range []string{"trusted", "danger-full-access", "admin"} {
		_, err := r.Resolve(&wire.ResolveRequest{Profile: name, Workspace: f.ws})
		wantCode(t, err, wire.CodeDenied, "--allow-trusted")
	}
	for _, p := range r.List().Profiles {
		if (p.Name == "trusted" || p.Name == "admin") == p.Enabled {
			t.Errorf("list: %s enabled = %v", p.Name, p.Enabled)
		}
	}
}

func TestBadRequests(t *testing.T) {
	f := newFixture(t)
	r := f.resolver(t, false, "")
	file := filepath.Join(f.ws, "file.txt")
	write(t, file, "x")
	outside := filepath.Dir(f.ws)
	link := filepath.Join(f.ws, "escape")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	home, _ := os.UserHomeDir()
	tests := []struct {
		name string
		req  wire.ResolveRequest
		code int
		msg  string
	}{
		{"unknown profile", wire.ResolveRequest{Profile: "yolo", Workspace: f.ws}, wire.CodeNotFound, "valid profiles are offline, net-readonly"},
		{"no workspace", wire.ResolveRequest{}, wire.CodeBadRequest, "workspace is required"},
		{"relative workspace", wire.ResolveRequest{Workspace: "proj/ws"}, wire.CodeBadRequest, "is relative"},
		{"missing workspace", wire.ResolveRequest{Workspace: f.ws + "-gone"}, wire.CodeBadRequest, "does not exist"},
		{"file workspace", wire.ResolveRequest{Workspace: file}, wire.CodeBadRequest, "not a directory"},
		{"nul workspace", wire.ResolveRequest{Workspace: f.ws + "\x00/x"}, wire.CodeBadRequest, "NUL byte"},
		{"root workspace", wire.ResolveRequest{Workspace: "/"}, wire.CodeBadRequest, "system directory"},
		{"etc workspace", wire.ResolveRequest{Workspace: "/etc"}, wire.CodeBadRequest, "system directory"},
		{"proc workspace", wire.ResolveRequest{Workspace: "/proc/self"}, wire.CodeBadRequest, "system directory"},
		{"home workspace", wire.ResolveRequest{Workspace: home}, wire.CodeBadRequest, ""},
		{"moat home workspace", wire.ResolveRequest{Workspace: f.moatHome}, wire.CodeBadRequest, "inside MOAT_HOME"},
		{"cwd outside", wire.ResolveRequest{Workspace: f.ws, Cwd: outside}, wire.CodeBadRequest, "outside the workspace"},
		{"cwd through symlink", wire.ResolveRequest{Workspace: f.ws, Cwd: link}, wire.CodeBadRequest, "outside the workspace"},
		{"cwd dotdot", wire.ResolveRequest{Workspace: f.ws, Cwd: f.ws + "/src/../.."}, wire.CodeBadRequest, "outside the workspace"},
		{"cwd relative", wire.ResolveRequest{Workspace: f.ws, Cwd: "src"}, wire.CodeBadRequest, "is relative"},
		{"cwd missing", wire.ResolveRequest{Workspace: f.ws, Cwd: f.ws + "/nope"}, wire.CodeBadRequest, "does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.Resolve(&tt.req)
			wantCode(t, err, tt.code, tt.msg)
		})
	}
	p, err := r.Resolve(&wire.ResolveRequest{Workspace: f.ws, Cwd: f.ws + "/src"})
	if err != nil || p.Cwd != f.ws+"/src" {
		t.Fatalf("cwd inside: %v %v", p, err)
	}
}

func TestWorkspaceInsideReadDeny(t *testing.T) {
	f := newFixture(t)
	t.Setenv("HOME", filepath.Dir(f.ws))
	ssh := filepath.Join(filepath.Dir(f.ws), ".ssh", "proj")
	if err := os.MkdirAll(ssh, 0o755); err != nil {
		t.Fatal(err)
	}
	r := f.resolver(t, false, "")
	_, err := r.Resolve(&wire.ResolveRequest{Workspace: ssh})
	wantCode(t, err, wire.CodeDenied, "no sandbox may read")
}
