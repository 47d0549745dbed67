package profile

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/moatsec/moat/pkg/wire"
)

// Toolchain caches. A profile that writes the workspace also gets
// moat-managed cache directories, so a fresh toolchain can build (go needs a
// build cache before it compiles anything) and a second run reuses what the
// first fetched. They live apart from the host's own caches, under the
// workspace owner's ~/.cache/moat, so a run never writes what the host's
// tools read: ~/.cache/go-build, ~/go/pkg/mod, ~/.npm stay read-only. Each
// cache is a writable root of the profile and is named to its toolchain by
// environment variables, which win over the caller's.
//
// Scope: "user" (the default) shares one set per user across workspaces;
// "workspace" gives every workspace its own, so one project's runs cannot
// leave anything in the cache another project's runs read.

// cacheDir is one directory of a cache and the variables that point at it;
// a value may hold {} for the directory.
type cacheDir struct {
	sub string
	env map[string]string
}

// cacheKinds are the caches a profile may name.
var cacheKinds = map[string][]cacheDir{
	"go":     {{"go-build", map[string]string{"GOCACHE": "{}"}}, {"go-mod", map[string]string{"GOMODCACHE": "{}"}}},
	"npm":    {{"npm", map[string]string{"npm_config_cache": "{}"}}},
	"pip":    {{"pip", map[string]string{"PIP_CACHE_DIR": "{}"}}},
	"cargo":  {{"cargo", map[string]string{"CARGO_HOME": "{}"}}},
	"gradle": {{"gradle", map[string]string{"GRADLE_USER_HOME": "{}"}}},
	"maven":  {{"m2", map[string]string{"MAVEN_OPTS": "-Dmaven.repo.local={}"}}},
	"xdg":    {{"xdg", map[string]string{"XDG_CACHE_HOME": "{}"}}}, // ~/.cache for everything else
}

// CacheNames lists every cache a profile may name, sorted.
func CacheNames() []string {
	names := make([]string, 0, len(cacheKinds))
	for n := range cacheKinds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// DefaultCaches are the caches of the built-ins that write the workspace.
var DefaultCaches = CacheNames()

// Cache scopes.
const (
	CacheScopeUser      = "user"
	CacheScopeWorkspace = "workspace"
)

// CacheRoot is where the caches of a workspace owned by the user whose home
// is home live, for scope.
func CacheRoot(home, ws, scope string) string {
	base := filepath.Join(home, ".cache", "moat")
	if scope == CacheScopeWorkspace {
		sum := sha256.Sum256([]byte(ws))
		return filepath.Join(base, "ws-"+hex.EncodeToString(sum[:6]))
	}
	return filepath.Join(base, CacheScopeUser)
}

// cacheScope is spec's scope as listed: empty when it keeps no caches.
func cacheScope(s *Spec) string {
	switch {
	case len(s.Caches) == 0:
		return ""
	case s.CacheScope == "":
		return CacheScopeUser
	}
	return s.CacheScope
}

// checkCaches accepts known cache names and scopes.
func checkCaches(names []string, scope string) error {
	for _, n := range names {
		if _, ok := cacheKinds[n]; !ok {
			return fmt.Errorf("caches: %q is not a cache moat manages; known: %s", n, strings.Join(CacheNames(), ", "))
		}
	}
	switch scope {
	case "", CacheScopeUser, CacheScopeWorkspace:
		return nil
	}
	return fmt.Errorf("cache_scope = %q: want %q or %q", scope, CacheScopeUser, CacheScopeWorkspace)
}

// addCaches makes spec's caches concrete in p: one writable root per cache
// directory and the variables that point the toolchains at them. Without a
// known owner home there is nowhere to keep them, and the profile gets none.
func addCaches(p *wire.Profile, spec *Spec, home string) {
	if home == "" || home == "/" || len(spec.Caches) == 0 {
		return
	}
	root := CacheRoot(home, p.Workspace, spec.CacheScope)
	if p.Env.Set == nil {
		p.Env.Set = map[string]string{}
	}
	for _, name := range spec.Caches {
		for _, d := range cacheKinds[name] {
			dir := filepath.Join(root, d.sub)
			p.Caches = append(p.Caches, wire.Cache{Name: name, Dir: dir})
			p.FS.Write = append(p.FS.Write, dir)
			for k, v := range d.env {
				p.Env.Set[k] = strings.ReplaceAll(v, "{}", dir)
			}
		}
	}
	p.FS.Write = tidy(p.FS.Write)
}

// meetCaches keeps the caches whose directories stay writable in m, and drops
// the variables of the others, so no toolchain is pointed at a directory it
// cannot write.
func meetCaches(m *wire.Profile, a *wire.Profile) {
	m.Caches = nil
	for _, c := range a.Caches {
		writable := slices.ContainsFunc(m.FS.Write, func(w string) bool { return within(c.Dir, w) })
		if writable {
			m.Caches = append(m.Caches, c)
			continue
		}
		for _, d := range cacheKinds[c.Name] {
			for k, v := range d.env {
				if m.Env.Set[k] == strings.ReplaceAll(v, "{}", c.Dir) {
					delete(m.Env.Set, k)
				}
			}
		}
	}
}
