package profile

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moatsec/moat/pkg/wire"
)

func TestNetLists(t *testing.T) {
	dir := t.TempDir()
	ws := filepath.Join(dir, "proj", "ws")
	os.MkdirAll(ws, 0o755)
	home := filepath.Join(dir, "moat")
	toml := `[profiles.ci]
extends = "workspace-net"
net_deny = ["*.githubusercontent.com", "10.0.0.0/8"]
[profiles.db]
extends = "workspace-write"
net = "allowlist"
net_allow = ["10.0.0.0/8:5432", "[fd00::/8]:5432", "db.internal:5432"]
[profiles.open]
extends = "workspace-net"
net = "full"
net_deny = ["pastebin.com"]
`
	os.MkdirAll(home, 0o700)
	os.WriteFile(filepath.Join(home, "profiles.toml"), []byte(toml), 0o600)
	r, err := NewResolver(Options{MoatHome: home, ProfilesFile: filepath.Join(home, "profiles.toml")})
	if err != nil {
		t.Fatal(err)
	}
	resolve := func(name string) *wire.Profile {
		t.Helper()
		p, err := r.Resolve(&wire.ResolveRequest{Profile: name, Workspace: ws})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if p := resolve("workspace-net"); p.Net.Mode != wire.NetAllowlist || !slices.Contains(p.Net.Allow, "proxy.golang.org") ||
		!slices.Contains(p.Net.Allow, "files.pythonhosted.org") || !slices.Contains(p.Net.Allow, "github.com") {
		t.Fatalf("workspace-net: %+v", p.Net)
	}
	if p := resolve("ci"); p.Net.Mode != wire.NetAllowlist || !slices.Equal(p.Net.Deny, []string{"*.githubusercontent.com", "10.0.0.0/8"}) {
		t.Fatalf("ci: %+v", p.Net)
	}
	if p := resolve("db"); !slices.Equal(p.Net.Allow, []string{"10.0.0.0/8:5432", "[fd00::/8]:5432", "db.internal:5432"}) {
		t.Fatalf("db: %+v", p.Net)
	}
	// The listing carries the lists.
	for _, info := range r.List().Profiles {
		if info.Name == "workspace-net" && !slices.Equal(info.NetAllow, DefaultNetAllow) {
			t.Errorf("listing of workspace-net: %v", info.NetAllow)
		}
		if info.Name == "open" && (info.Network != wire.NetFull || !slices.Equal(info.NetDeny, []string{"pastebin.com"})) {
			t.Errorf("listing of open: %+v", info)
		}
	}

	// A .moat-profile narrows: its net_allow meets, its net_deny adds.
	os.WriteFile(filepath.Join(ws, DirFile), []byte(`net_allow = ["github.com", "evil.example"]`+"\nnet_deny = [\"api.github.com\"]\n"), 0o644)
	p := resolve("ci")
	if !slices.Equal(p.Net.Allow, []string{"github.com"}) || !slices.Equal(p.Net.Deny, []string{"*.githubusercontent.com", "10.0.0.0/8", "api.github.com"}) {
		t.Fatalf("narrowed ci: %+v", p.Net)
	}
	p = resolve("open")
	if p.Net.Mode != wire.NetAllowlist || !slices.Equal(p.Net.Allow, []string{"evil.example", "github.com"}) || !slices.Equal(p.Net.Deny, []string{"api.github.com", "pastebin.com"}) {
		t.Fatalf("narrowed open: %+v", p.Net)
	}
	os.Remove(filepath.Join(ws, DirFile))

	for _, bad := range []string{
		"[profiles.x]\nextends = \"workspace-net\"\nnet_allow = [\"10.0.0.0/8\"]\n",  // a range names its port
		"[profiles.x]\nextends = \"workspace-net\"\nnet_deny = [\"http://x\"]\n",     // not an entry
		"[profiles.x]\nextends = \"workspace-net\"\nnet_allow = [\"2001:db8::1\"]\n", // v6 needs brackets
	} {
		os.WriteFile(filepath.Join(home, "profiles.toml"), []byte(bad), 0o600)
		if _, err := LoadCatalog(filepath.Join(home, "profiles.toml")); err == nil || !strings.Contains(err.Error(), "net_") {
			t.Errorf("%q loaded: %v", bad, err)
		}
	}
}
