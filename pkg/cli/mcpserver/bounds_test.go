package mcpserver

import (
	"testing"

	"github.com/moatsec/moat/pkg/wire"
)

func TestWider(t *testing.T) {
	base := func() *wire.Profile {
		return &wire.Profile{Name: "max", Base: "workspace-write", Workspace: "/ws",
			FS: wire.FS{Write: []string{"/ws"}, Read: []string{"/home/u/.gitconfig"}, ReadDeny: []string{"/home/u/.ssh"}, WriteDeny: []string{"/ws/.git/hooks"},
				WriteDenyGlobs: []string{"/ws/**/*.pem"}},
			Net:          wire.Net{Mode: wire.NetAllowlist, Allow: []string{"proxy.golang.org:443", "*.github.com"}, Deny: []string{"gist.github.com"}},
			Irreversible: "prompt",
			Limits:       wire.Limits{TimeoutMS: 1000, MemoryBytes: 1 << 30, Pids: 100, CPUMS: 1000, OutputBytes: 1 << 20, FileBytes: 1 << 20},
			Env:          wire.Env{Pass: []string{"PATH"}, Set: map[string]string{"TMPDIR": "/tmp"}}}
	}
	cases := []struct {
		name   string
		change func(p *wire.Profile)
		wider  bool
	}{
		{"the same", func(p *wire.Profile) {}, false},
		{"writes nothing, so needs no write_deny", func(p *wire.Profile) { p.FS.Write, p.FS.WriteDeny = nil, nil }, false},
		{"writes a subdirectory", func(p *wire.Profile) { p.FS.Write = []string{"/ws/sub"} }, false},
		{"no network", func(p *wire.Profile) { p.Net = wire.Net{Mode: wire.NetNone} }, false},
		{"lower limits", func(p *wire.Profile) { p.Limits.MemoryBytes = 1 }, false},
		{"more denied", func(p *wire.Profile) { p.FS.ReadDeny = append(p.FS.ReadDeny, "/x") }, false},
		{"trusted", func(p *wire.Profile) { p.Base = "trusted" }, true},
		{"writes outside", func(p *wire.Profile) { p.FS.Write = append(p.FS.Write, "/home/u") }, true},
		{"writes the parent", func(p *wire.Profile) { p.FS.Write = []string{"/"} }, true},
		{"writes what max keeps read-only", func(p *wire.Profile) { p.FS.WriteDeny = nil }, true},
		{"writes inside what max keeps read-only", func(p *wire.Profile) { p.FS.Write = []string{"/ws/.git/hooks/x"}; p.FS.WriteDeny = nil }, true},
		{"reads a denied path", func(p *wire.Profile) { p.FS.ReadDeny = nil }, true},
		{"reads less", func(p *wire.Profile) { p.FS.Read = nil }, false},
		{"reads inside a write root of max", func(p *wire.Profile) { p.FS.Read = []string{"/ws/doc"} }, false},
		{"reads another path", func(p *wire.Profile) { p.FS.Read = append(p.FS.Read, "/srv/data") }, true},
		{"full network", func(p *wire.Profile) { p.Net = wire.Net{Mode: wire.NetFull} }, true},
		{"another host", func(p *wire.Profile) { p.Net.Allow = []string{"evil.example:443"} }, true},
		{"unknown network mode", func(p *wire.Profile) { p.Net.Mode = "weird" }, true},
		{"longer timeout", func(p *wire.Profile) { p.Limits.TimeoutMS++ }, true},
		{"more pids", func(p *wire.Profile) { p.Limits.Pids++ }, true},
		{"more output", func(p *wire.Profile) { p.Limits.OutputBytes++ }, true},
		{"passes a variable", func(p *wire.Profile) { p.Env.Pass = append(p.Env.Pass, "GITHUB_TOKEN") }, true},
		{"sets a variable", func(p *wire.Profile) { p.Env.Set = map[string]string{"LD_PRELOAD": "/x.so"} }, true},
		{"drops a net_deny entry", func(p *wire.Profile) { p.Net.Deny = nil }, true},
		{"full network without max's net_deny", func(p *wire.Profile) { p.Net = wire.Net{Mode: wire.NetFull} }, true},
		{"more net_deny", func(p *wire.Profile) { p.Net.Deny = append(p.Net.Deny, "x.example") }, false},
		{"lets irreversible operations through", func(p *wire.Profile) { p.Irreversible = "allow" }, true},
		{"an unknown irreversible", func(p *wire.Profile) { p.Irreversible = "maybe" }, true},
		{"denies irreversible operations", func(p *wire.Profile) { p.Irreversible = "deny" }, false},
		{"irreversible unset is prompt", func(p *wire.Profile) { p.Irreversible = "" }, false},
		{"drops a write_deny pattern", func(p *wire.Profile) { p.FS.WriteDenyGlobs = nil }, true},
		{"leaves a guarded name writable", func(p *wire.Profile) { p.FS.Unguarded = []string{".husky"} }, true},
		{"writes nothing, so needs no write_deny pattern", func(p *wire.Profile) { p.FS.Write, p.FS.WriteDeny, p.FS.WriteDenyGlobs = nil, nil, nil }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := base()
			tc.change(p)
			if got := wider(p, base()); (got != "") != tc.wider {
				t.Fatalf("wider = %q, want wider %v", got, tc.wider)
			}
		})
	}
}
