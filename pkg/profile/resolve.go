package profile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moatsec/moat/pkg/glob"
	"github.com/moatsec/moat/pkg/wire"
)

// Options configure a Resolver.
type Options struct {
	MoatHome     string // absolute; always read- and write-denied
	ProfilesFile string // custom profiles; may not exist
	AllowTrusted bool   // trusted (and profiles extending it) resolve only when set
}

// Resolver resolves requests against a catalog it can reload. It is safe for
// concurrent use; a reload swaps the catalog atomically between requests.
type Resolver struct {
	opts    Options
	catalog atomic.Pointer[Catalog]
}

// homes caches uid → home directory; reading /etc/passwd per request is costly.
var homes sync.Map

// OwnerHome is the home directory of the user who owns dir, the user a
// sandboxed command in dir runs as; empty when unknown.
func OwnerHome(dir string) string {
	fi, err := os.Stat(dir)
	if err != nil {
		return ""
	}
	return ownerHome(fi)
}

func ownerHome(fi os.FileInfo) string {
	uid, ok := ownerUID(fi)
	if !ok {
		return ""
	}
	if h, ok := homes.Load(uid); ok {
		return h.(string)
	}
	h := homeOf(uid)
	if h != "" {
		homes.Store(uid, h)
	}
	return h
}

// NewResolver loads the catalog; a broken profiles file is an error.
func NewResolver(opts Options) (*Resolver, error) {
	if !filepath.IsAbs(opts.MoatHome) {
		return nil, fmt.Errorf("MOAT_HOME %q must be absolute", opts.MoatHome)
	}
	r := &Resolver{opts: opts}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload rereads the profiles file. On error the old catalog stays in force.
func (r *Resolver) Reload() error {
	c, err := LoadCatalog(r.opts.ProfilesFile)
	if err != nil {
		return err
	}
	r.catalog.Store(c)
	return nil
}

// Resolve turns req into a concrete profile. Errors are *wire.Error: 404 for an
// unknown profile, 403 for a disabled one or a .moat-profile that tries to
// widen, 400 for bad paths.
func (r *Resolver) Resolve(req *wire.ResolveRequest) (*wire.Profile, error) {
	cat := r.catalog.Load()
	name := canonical(req.Profile)
	spec, ok := cat.specs[name]
	if !ok {
		return nil, wire.Errorf(wire.CodeNotFound, "unknown profile %q: valid profiles are %s (aliases: %s)",
			req.Profile, strings.Join(cat.names, ", "), strings.Join(aliasNames(), ", "))
	}
	if spec.Base == Trusted && !r.opts.AllowTrusted {
		return nil, wire.Errorf(wire.CodeDenied, "profile %q is disabled: it allows everything, so profiled must be started with --allow-trusted to offer it", spec.Name)
	}
	ws, cwd, wsInfo, err := r.paths(req.Workspace, req.Cwd)
	if err != nil {
		return nil, err
	}
	homes := r.homesFor(wsInfo)
	if slices.Contains(homes, ws) {
		return nil, wire.Errorf(wire.CodeBadRequest, "workspace %s is a home directory, whose dotfiles other programs run: pass a project directory inside it", ws)
	}
	for _, h := range homes {
		if within(h, ws) && h != ws {
			return nil, wire.Errorf(wire.CodeBadRequest, "workspace %s holds the home directory %s, whose dotfiles other programs run: pass a project directory that holds no home", ws, h)
		}
	}
	p, err := r.build(cat, spec, ws, cwd, homes)
	if err != nil {
		return nil, err
	}
	for _, d := range p.FS.ReadDeny {
		if within(ws, d) {
			return nil, wire.Errorf(wire.CodeDenied, "workspace %s lies inside %s, which no sandbox may read: pick another workspace", ws, d)
		}
	}
	return r.narrow(cat, p, homes)
}

// build makes spec concrete for one workspace.
func (r *Resolver) build(cat *Catalog, spec *Spec, ws, cwd string, homes []string) (*wire.Profile, error) {
	p := &wire.Profile{Name: spec.Name, Base: spec.Base, Description: spec.Description,
		Workspace: ws, Cwd: cwd, Source: spec.Source, Limits: spec.Limits, Irreversible: spec.Irreversible,
		Net: wire.Net{Mode: spec.Net.Mode, Allow: slices.Clone(spec.Net.Allow), Deny: slices.Clone(spec.Net.Deny)},
		Env: wire.Env{Pass: slices.Clone(spec.Env.Pass), Set: cloneMap(spec.Env.Set)}}
	var write, writeDeny, unguarded []string
	switch spec.scope {
	case writeWorkspace:
		write = append(write, ws)
		for _, rel := range Protected {
			if !slices.Contains(spec.Release, rel) {
				writeDeny = append(writeDeny, filepath.Join(ws, rel))
			}
		}
		for _, rel := range wire.Guarded {
			if slices.Contains(spec.Release, rel) {
				unguarded = append(unguarded, rel)
			}
		}
		gw, gd := gitWorkspace(ws)
		write, writeDeny = append(write, gw...), append(writeDeny, gd...)
	case writeEverything:
		write = append(write, "/")
	}
	extra, err := expand(spec.Write, homes)
	if err != nil {
		return nil, err
	}
	write = append(write, extra...)
	readDeny, err := cat.readDenyFor(spec, homes, func() ([]string, error) {
		if spec.Base == Trusted {
			// trusted drops the filesystem restrictions but moat's own secrets:
			// a trusted command must not be able to speak for moat on the bus.
			return tidy([]string{filepath.Join(r.opts.MoatHome, "creds"), filepath.Join(r.opts.MoatHome, "keys")}), nil
		}
		l, err := expand(append(slices.Clone(spec.ReadDeny), cat.readDeny...), homes)
		if err != nil {
			return nil, err
		}
		return tidy(append(l, r.opts.MoatHome)), nil
	})
	if err != nil {
		return nil, err
	}
	wd, err := expand(spec.WriteDeny, homes)
	if err != nil {
		return nil, err
	}
	writeDeny = append(writeDeny, wd...)
	writeDeny = append(writeDeny, r.opts.MoatHome) // the audit trail stays out of reach
	read, err := expand(spec.Read, homes)
	if err != nil {
		return nil, err
	}
	p.FS = wire.FS{Write: tidy(write), ReadDeny: slices.Clone(readDeny), WriteDeny: tidy(writeDeny),
		WriteDenyGlobs: patterns(spec.WriteDeny, homes), Unguarded: unguarded}
	if len(read) > 0 && spec.Base != Trusted {
		p.FS.Read = tidy(read)
	}
	if spec.scope != writeEverything {
		addCaches(p, spec, OwnerHome(ws))
	}
	return p, nil
}

// systemDirs may not be a workspace: a writable workspace there would be a
// writable system. Some have a reason of their own.
var systemDirs = map[string]string{
	"/root": "is the root user's home directory, whose dotfiles other programs run",
	"/home": "holds the users' home directories",
	"/tmp":  "is shared by every user",
}

func init() {
	for _, d := range []string{"/", "/bin", "/boot", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/opt",
		"/run", "/sbin", "/srv", "/usr", "/var", "/mnt", "/media"} {
		systemDirs[d] = "is a system directory"
	}
}

// paths checks and canonicalizes the workspace and cwd, and returns the
// workspace's file info.
func (r *Resolver) paths(wsIn, cwd string) (string, string, os.FileInfo, error) {
	ws, wsInfo, err := existingDir("workspace", wsIn)
	if err != nil {
		return "", "", nil, err
	}
	if why, ok := systemDirs[ws]; ok {
		return "", "", nil, wire.Errorf(wire.CodeBadRequest, "workspace %s %s: pass the project directory instead", ws, why)
	}
	if within(ws, "/proc") || within(ws, "/sys") || within(ws, "/dev") {
		return "", "", nil, wire.Errorf(wire.CodeBadRequest, "workspace %s is a system directory: pass the project directory instead", ws)
	}
	if within(ws, r.opts.MoatHome) {
		return "", "", nil, wire.Errorf(wire.CodeBadRequest, "workspace %s is inside MOAT_HOME (%s): pass a project directory", ws, r.opts.MoatHome)
	}
	if cwd == "" {
		return ws, ws, wsInfo, nil
	}
	if sub, ok := below(ws, wsIn, cwd); ok {
		return ws, sub, wsInfo, nil
	}
	cwd, _, err = existingDir("cwd", cwd)
	if err != nil {
		return "", "", nil, err
	}
	if !within(cwd, ws) {
		return "", "", nil, wire.Errorf(wire.CodeBadRequest, "cwd %s is outside the workspace %s: pass a cwd inside it", cwd, ws)
	}
	return ws, cwd, wsInfo, nil
}

// below is the fast path for a cwd given under the workspace as it was
// asked (wsIn): it resolves only the components below the workspace, and
// gives up (ok false) on anything but plain directories, leaving the general
// path to decide.
func below(ws, wsIn, cwd string) (string, bool) {
	rest, ok := strings.CutPrefix(filepath.Clean(cwd), filepath.Clean(wsIn)+"/")
	if !ok || !filepath.IsAbs(cwd) || strings.ContainsRune(cwd, 0) {
		return "", false
	}
	p := ws
	for _, c := range strings.Split(rest, "/") {
		if c == ".." || c == "." || c == "" {
			return "", false
		}
		p += "/" + c
		fi, err := os.Lstat(p)
		if err != nil || !fi.IsDir() {
			return "", false
		}
	}
	return p, true
}

// existingDir checks that p is an absolute path of an existing directory and
// returns it with symlinks resolved, and its file info.
func existingDir(what, p string) (string, os.FileInfo, error) {
	switch {
	case p == "":
		return "", nil, wire.Errorf(wire.CodeBadRequest, "%s is required: pass an absolute path", what)
	case strings.ContainsRune(p, 0):
		return "", nil, wire.Errorf(wire.CodeBadRequest, "%s contains a NUL byte", what)
	case !filepath.IsAbs(p):
		return "", nil, wire.Errorf(wire.CodeBadRequest, "%s %q is relative: pass an absolute path", what, p)
	}
	real, err := filepath.EvalSymlinks(p)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil, wire.Errorf(wire.CodeBadRequest, "%s %s does not exist", what, p)
	}
	if err != nil {
		return "", nil, wire.Errorf(wire.CodeBadRequest, "%s %s: %v", what, p, unwrapPath(err))
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", nil, wire.Errorf(wire.CodeBadRequest, "%s %s: %v", what, p, unwrapPath(err))
	}
	if !fi.IsDir() {
		return "", nil, wire.Errorf(wire.CodeBadRequest, "%s %s is not a directory", what, p)
	}
	return real, fi, nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// homesFor lists the home directories whose secrets a command in ws must not
// read: the workspace owner's (the command runs as that user) and profiled's own.
func (r *Resolver) homesFor(ws os.FileInfo) []string {
	var homes []string
	if h := ownerHome(ws); h != "" {
		homes = append(homes, h)
	}
	if h := os.Getenv("HOME"); h != "" && filepath.IsAbs(h) && !slices.Contains(homes, filepath.Clean(h)) {
		homes = append(homes, filepath.Clean(h))
	}
	return homes
}

// globCache keeps a glob's matches for globTTL: read-deny globs name system
// files (ssh host keys) that appear rarely, and matching them on every
// request costs a directory read.
type globCache struct {
	mu sync.Mutex
	m  map[string]globEntry
}

type globEntry struct {
	matches []string
	at      time.Time
}

const globTTL = 2 * time.Second

// A pattern may match at most globMatches paths (each is a mount) and read
// at most globEntries directory entries (a "**" over a large workspace).
const (
	globMatches = 10_000
	globEntries = 1_000_000
)

var globs = &globCache{m: map[string]globEntry{}}

func (g *globCache) match(pattern string) ([]string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if e, ok := g.m[pattern]; ok && time.Since(e.at) < globTTL {
		return e.matches, nil
	}
	m, err := glob.Expand(pattern, globMatches, globEntries)
	if err != nil {
		return nil, wire.Errorf(wire.CodeBadRequest, "%v", err)
	}
	g.m[pattern] = globEntry{matches: m, at: time.Now()}
	return m, nil
}

// candidates makes a path concrete but for its pattern: ~ becomes each home.
func candidates(p string, homes []string) []string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		var out []string
		for _, h := range homes {
			out = append(out, filepath.Join(h, strings.TrimPrefix(p, "~")))
		}
		return out
	}
	return []string{filepath.Clean(p)}
}

// expand makes paths concrete: ~ becomes each home, patterns their matches
// (see package glob).
func expand(paths []string, homes []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		for _, c := range candidates(p, homes) {
			if !glob.Meta(c) {
				out = append(out, c)
				continue
			}
			m, err := globs.match(c)
			if err != nil {
				return nil, err
			}
			out = append(out, m...)
		}
	}
	return out, nil
}

// patterns lists the paths that are patterns, ~ made concrete.
func patterns(paths []string, homes []string) []string {
	var out []string
	for _, p := range paths {
		for _, c := range candidates(p, homes) {
			if glob.Meta(c) {
				out = append(out, c)
			}
		}
	}
	return out
}

// within reports whether p is root or lies under it.
func within(p, root string) bool {
	return p == root || root == "/" || strings.HasPrefix(p, root+"/")
}

// tidy sorts and de-duplicates, and never returns nil (lists encode as []).
func tidy(l []string) []string {
	out := make([]string, 0, len(l))
	out = append(out, l...)
	sort.Strings(out)
	return slices.Compact(out)
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func aliasNames() []string {
	names := make([]string, 0, len(Aliases))
	for a, b := range Aliases {
		names = append(names, a+"→"+b)
	}
	sort.Strings(names)
	return names
}
