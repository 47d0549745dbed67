package profile

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/moatsec/moat/pkg/wire"
)

// fileConfig is MOAT_HOME/profiles.toml.
//
//	read_deny = ["/srv/secrets"]        # added to every profile but trusted
//
//	[profiles.ci]
//	extends = "workspace-net"
//	description = "CI jobs"
//	write = ["~/.cache/go-build"]       # extra write roots
//	read = ["~/.config/ci", "/srv/data"] # extra read-only paths
//	read_deny = ["~/.config/ci"]
//	write_deny = ["/srv/ci/config"]
//	release = [".devcontainer"]         # protected entries left writable
//	net = "allowlist"                   # none, full or allowlist
//	net_allow = ["proxy.golang.org:443"]
//	net_deny = ["*.evil.example"]       # wins over net_allow
//	env_pass = ["GOFLAGS"]
//	env_set = { GOTOOLCHAIN = "local" }
//	caches = ["go", "npm"]              # toolchain caches (replaces the base's list)
//	cache_scope = "workspace"           # user (default) or workspace
//	irreversible = "deny"               # prompt (default), deny or allow
//	[profiles.ci.limits]
//	timeout = "10m"
//	memory = "4GiB"
type fileConfig struct {
	ReadDeny []string              `toml:"read_deny"`
	Profiles map[string]customTOML `toml:"profiles"`
}

type customTOML struct {
	Extends     string            `toml:"extends"`
	Description string            `toml:"description"`
	Write       []string          `toml:"write"`
	Read        []string          `toml:"read"`
	ReadDeny    []string          `toml:"read_deny"`
	WriteDeny   []string          `toml:"write_deny"`
	Release     []string          `toml:"release"`
	Net         string            `toml:"net"`
	NetAllow    []string          `toml:"net_allow"`
	NetDeny     []string          `toml:"net_deny"`
	EnvPass     []string          `toml:"env_pass"`
	EnvSet      map[string]string `toml:"env_set"`
	Caches      *[]string         `toml:"caches"`
	CacheScope  string            `toml:"cache_scope"`
	Limits      limitsTOML        `toml:"limits"`
	// Irreversible: prompt, deny or allow for operations that destroy
	// uncommitted work or remote history (docs/policy.md).
	Irreversible string `toml:"irreversible"`
}

var customName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`) })

// Catalog is the set of profiles a resolver knows: built-ins, aliases and
// custom profiles, plus read-deny paths added to every profile but trusted.
type Catalog struct {
	specs    map[string]*Spec
	names    []string // listing order: built-ins, then custom sorted
	readDeny []string
	// expanded caches each (profile, homes) read-deny list, the bulk of a
	// resolution's work; entries age out with the glob cache.
	expanded sync.Map // string → expansion
}

type expansion struct {
	list []string // sorted, never modified
	at   time.Time
}

// readDenyFor returns the cached read-deny list of spec for homes, computing
// it with make when absent or stale. Callers must not modify the result.
func (c *Catalog) readDenyFor(spec *Spec, homes []string, make func() ([]string, error)) ([]string, error) {
	key := spec.Name + "\x00" + strings.Join(homes, "\x00")
	if e, ok := c.expanded.Load(key); ok && time.Since(e.(expansion).at) < globTTL {
		return e.(expansion).list, nil
	}
	l, err := make()
	if err != nil {
		return nil, err
	}
	c.expanded.Store(key, expansion{list: l, at: time.Now()})
	return l, nil
}

// LoadCatalog reads the built-ins and, when path exists, the custom profiles
// in it. Any mistake in the file is an error naming the file and what to fix:
// profiled does not start on a half-understood configuration.
func LoadCatalog(path string) (*Catalog, error) {
	c := &Catalog{specs: builtins(), names: slices.Clone(BuiltinNames)}
	if path == "" {
		return c, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var fc fileConfig
	md, err := toml.Decode(string(data), &fc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("%s: unknown setting %q; see docs/profiles.md for the keys a custom profile takes", path, und[0].String())
	}
	if err := checkPaths(fc.ReadDeny); err != nil {
		return nil, fmt.Errorf("%s: read_deny: %w", path, err)
	}
	c.readDeny = fc.ReadDeny
	names := make([]string, 0, len(fc.Profiles))
	for name := range fc.Profiles {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		spec, err := c.custom(name, fc.Profiles[name], path)
		if err != nil {
			return nil, fmt.Errorf("%s: profile %q: %w", path, name, err)
		}
		c.specs[name] = spec
		c.names = append(c.names, name)
	}
	return c, nil
}

func (c *Catalog) custom(name string, t customTOML, path string) (*Spec, error) {
	if !customName().MatchString(name) {
		return nil, errors.New("a name is lowercase letters, digits and dashes, starting with a letter")
	}
	if _, taken := c.specs[name]; taken || Aliases[name] != "" {
		return nil, errors.New("the name is a built-in profile or alias; pick another")
	}
	baseName := canonical(t.Extends)
	base, ok := c.specs[baseName]
	if !ok || base.Source != "builtin" {
		return nil, fmt.Errorf("extends = %q: a custom profile extends one of %s", t.Extends, strings.Join(BuiltinNames, ", "))
	}
	for key, list := range map[string][]string{"write": t.Write, "read": t.Read, "read_deny": t.ReadDeny, "write_deny": t.WriteDeny} {
		if err := checkPaths(list); err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
	}
	s := *base
	s.Name, s.Base, s.Source = name, base.Name, path
	if t.Description != "" {
		s.Description = t.Description
	} else {
		s.Description = "custom, extends " + base.Name
	}
	s.Write = concat(base.Write, t.Write)
	s.Read = concat(base.Read, t.Read)
	s.ReadDeny = concat(base.ReadDeny, t.ReadDeny)
	s.WriteDeny = concat(base.WriteDeny, t.WriteDeny)
	for _, r := range t.Release {
		if !slices.Contains(Protected, r) && !slices.Contains(wire.Guarded, r) || slices.Contains(fixed, r) {
			return nil, fmt.Errorf("release %q: a profile can release only one of %s, by that name", r, strings.Join(releasable(), ", "))
		}
	}
	s.Release = t.Release
	switch t.Net {
	case "":
		if len(t.NetAllow) > 0 {
			s.Net = wire.Net{Mode: wire.NetAllowlist, Allow: t.NetAllow}
		}
	case wire.NetNone, wire.NetFull:
		if len(t.NetAllow) > 0 {
			return nil, fmt.Errorf("net = %q takes no net_allow; use net = \"allowlist\"", t.Net)
		}
		s.Net = wire.Net{Mode: t.Net}
	case wire.NetAllowlist:
		if len(t.NetAllow) == 0 {
			return nil, errors.New("net = \"allowlist\" needs net_allow entries such as \"proxy.golang.org:443\"")
		}
		s.Net = wire.Net{Mode: wire.NetAllowlist, Allow: t.NetAllow}
	default:
		return nil, fmt.Errorf("net = %q: want none, full or allowlist", t.Net)
	}
	if err := checkHosts(s.Net.Allow); err != nil {
		return nil, err
	}
	if err := checkDeny(t.NetDeny); err != nil {
		return nil, err
	}
	s.Net.Deny = concat(base.Net.Deny, t.NetDeny)
	if t.Caches != nil {
		s.Caches = *t.Caches
	}
	if t.CacheScope != "" {
		s.CacheScope = t.CacheScope
	}
	if err := checkCaches(s.Caches, s.CacheScope); err != nil {
		return nil, err
	}
	if len(s.Caches) > 0 && s.scope == writeNothing {
		return nil, fmt.Errorf("caches: %s writes nothing, so it keeps no caches; extend workspace-write or workspace-net", base.Name)
	}
	switch t.Irreversible {
	case "":
		s.Irreversible = base.Irreversible
	case wire.VerdictPrompt, wire.VerdictDeny, wire.VerdictAllow:
		s.Irreversible = t.Irreversible
	default:
		return nil, fmt.Errorf("irreversible = %q: want prompt, deny or allow", t.Irreversible)
	}
	s.Limits = t.Limits.apply(base.Limits, false)
	s.Env = wire.Env{Pass: concat(base.Env.Pass, t.EnvPass), Set: map[string]string{}}
	for k, v := range base.Env.Set {
		s.Env.Set[k] = v
	}
	for k, v := range t.EnvSet {
		if strings.HasPrefix(k, "MOAT_") || strings.HasPrefix(k, "NATS_") {
			return nil, fmt.Errorf("env_set %s: moat's own variables never reach a sandbox", k)
		}
		s.Env.Set[k] = v
	}
	return &s, nil
}

// checkPaths accepts absolute paths and ~/ paths, without NUL bytes.
func checkPaths(paths []string) error {
	for _, p := range paths {
		if strings.ContainsRune(p, 0) {
			return fmt.Errorf("path %q contains a NUL byte", p)
		}
		if !strings.HasPrefix(p, "/") && p != "~" && !strings.HasPrefix(p, "~/") {
			return fmt.Errorf("path %q must be absolute or start with ~/", p)
		}
	}
	return nil
}

// releasable lists the protected entries a profile may release.
func releasable() []string {
	var out []string
	for _, p := range Protected {
		if !slices.Contains(fixed, p) {
			out = append(out, p)
		}
	}
	return append(out, wire.Guarded...)
}

func concat(a, b []string) []string {
	out := make([]string, 0, len(a)+len(b))
	return append(append(out, a...), b...)
}

// canonical maps an alias to its built-in and "" to the default.
func canonical(name string) string {
	name = strings.TrimSpace(name)
	if name == "" {
		return Default
	}
	if b, ok := Aliases[name]; ok {
		return b
	}
	return name
}
