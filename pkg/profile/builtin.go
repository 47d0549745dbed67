package profile

import (
	"time"

	"github.com/moatsec/moat/pkg/wire"
)

// Built-in profile names.
const (
	Offline        = "offline"
	NetReadonly    = "net-readonly"
	WorkspaceWrite = "workspace-write"
	WorkspaceNet   = "workspace-net"
	Trusted        = "trusted"
	Default        = Offline // what an empty name means: fail safe
)

// Aliases maps other names (Codex's among them) to built-ins.
var Aliases = map[string]string{
	"read-only":          Offline,
	"readonly":           Offline,
	"danger-full-access": Trusted,
	"full-access":        Trusted,
	"net-read-only":      NetReadonly,
	"read-net":           NetReadonly,
	"workspace":          WorkspaceWrite,
}

// writeScope is what a profile may write before extra roots are added.
type writeScope int

const (
	writeNothing writeScope = iota
	writeWorkspace
	writeEverything
)

// Spec is a profile before resolution: paths may start with ~ and the
// workspace is not known yet.
type Spec struct {
	Name        string
	Base        string // the built-in it extends (itself for a built-in)
	Description string
	Source      string
	scope       writeScope
	Write       []string // extra write roots
	Read        []string // read-only paths beyond the system, workspace and writable roots
	ReadDeny    []string
	WriteDeny   []string
	Release     []string // entries of Protected this profile leaves writable
	Net         wire.Net
	Limits      wire.Limits
	Env         wire.Env
	Caches      []string // toolchain caches (see caches.go)
	CacheScope  string   // "user" (default) or "workspace"
	// Irreversible is the profile's irreversible key: "", prompt, deny or allow.
	Irreversible string
}

// DefaultLimits bound every built-in but trusted's timeout.
var DefaultLimits = wire.Limits{
	TimeoutMS:   (2 * time.Minute).Milliseconds(),
	MemoryBytes: 2 << 30,
	Pids:        512,
	CPUMS:       (5 * time.Minute).Milliseconds(),
	OutputBytes: 1 << 20,
	FileBytes:   1 << 30,
}

// DefaultEnv is the environment allowlist: nothing that carries credentials.
var DefaultEnv = wire.Env{
	Pass: []string{"PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "TZ", "LANG", "LANGUAGE",
		"LC_ALL", "LC_CTYPE", "LC_MESSAGES", "COLUMNS", "LINES", "NO_COLOR"},
	Set: map[string]string{"TMPDIR": "/tmp"},
}

// DefaultRead is the per-user configuration every profile but trusted may
// read, so that tools behave as they do for the user: git's identity,
// aliases and ignore rules, go's settings (go env -w). Everything else in a home is absent from a run
// unless a profile's read entries name it (docs/sandbox.md).
var DefaultRead = []string{"~/.gitconfig", "~/.config/git", "~/.config/go/env"}

// DefaultReadDeny lists what no sandboxed command may read: credentials of
// the usual tools in every relevant home, and the system's secrets. Globs are
// expanded at resolution.
var DefaultReadDeny = []string{
	"~/.ssh", "~/.aws", "~/.gnupg", "~/.config/gh", "~/.config/hub", "~/.netrc",
	"~/.docker/config.json", "~/.kube", "~/.config/gcloud", "~/.azure", "~/.git-credentials", "~/.config/git/credentials",
	"~/.npmrc", "~/.pypirc", "~/.cargo/credentials", "~/.cargo/credentials.toml",
	"~/.password-store", "~/.local/share/keyrings", "~/.vault-token",
	"~/.terraform.d/credentials.tfrc.json", "~/.gem/credentials",
	"/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/sudoers.d", "/etc/ssh/ssh_host_*_key", "/etc/ssl/private",
	// Sockets of daemons that run as root: reaching one is root on the host.
	"/var/run/docker.sock", "/run/docker.sock", "/run/containerd", "/run/podman", "/var/run/libvirt",
	"/run/snapd.socket", "/run/user/*/docker.sock", "/run/user/*/podman",
}

// Protected lists the paths inside a writable workspace that let a command
// escalate (configuration that other tools, agents among them, execute or
// obey outside the sandbox), relative to the workspace. The workspace's git
// directory is protected besides (see gitWorkspace), and every other git
// directory in it by the sandbox.
var Protected = []string{".moat", ".moat-profile", ".codex", ".vscode", ".idea", ".envrc",
	".mcp.json", ".claude", ".cursor", ".gemini", ".devcontainer", ".gitmodules"}

// fixed are the protected paths no profile can release: moat's own.
var fixed = []string{".moat", ".moat-profile"}

func builtins() map[string]*Spec {
	mk := func(name, desc string, scope writeScope, net string) *Spec {
		s := &Spec{Name: name, Base: name, Description: desc, Source: "builtin", scope: scope,
			Read: DefaultRead, ReadDeny: DefaultReadDeny, Net: wire.Net{Mode: net}, Limits: DefaultLimits, Env: DefaultEnv}
		return s
	}
	trusted := mk(Trusted, "everything, with network; for admin work, off unless profiled runs with --allow-trusted, always audited", writeEverything, wire.NetFull)
	trusted.Read = nil     // it reads everything
	trusted.ReadDeny = nil // only moat's own secrets stay hidden (added at resolution)
	trusted.Limits.TimeoutMS = (10 * time.Minute).Milliseconds()
	return map[string]*Spec{
		Offline:        mk(Offline, "read the code, write nothing but a private /tmp, no network", writeNothing, wire.NetNone),
		NetReadonly:    mk(NetReadonly, "read and fetch: no writes but a private /tmp, full network", writeNothing, wire.NetFull),
		WorkspaceWrite: withCaches(mk(WorkspaceWrite, "everyday development: write the workspace, its toolchain caches and a private /tmp, no network", writeWorkspace, wire.NetNone)),
		WorkspaceNet:   withNetAllow(withCaches(mk(WorkspaceNet, "installs and full-stack work: write the workspace and its toolchain caches, reach package registries and code hosts", writeWorkspace, wire.NetAllowlist))),
		Trusted:        trusted,
	}
}

func withCaches(s *Spec) *Spec {
	s.Caches = DefaultCaches
	return s
}

// BuiltinNames in the order they are listed.
var BuiltinNames = []string{Offline, NetReadonly, WorkspaceWrite, WorkspaceNet, Trusted}
