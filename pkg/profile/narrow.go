package profile

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/BurntSushi/toml"
	"github.com/moatsec/moat/pkg/smallfile"
	"github.com/moatsec/moat/pkg/wire"
)

// DirFile is the per-directory file that narrows a profile.
const DirFile = ".moat-profile"

// dirTOML is what a .moat-profile may say. Every key narrows:
//
//	profile = "workspace-write"   # the most this directory allows (a ceiling)
//	read_deny = ["secrets"]       # relative to the file's directory, absolute, or ~/
//	write_deny = ["vendor"]
//	net_allow = ["proxy.golang.org:443"]  # full network becomes this allowlist
//	net_deny = ["*.example.com"]          # added to the profile's net_deny
//	[limits]                      # caps: only lower values take effect
//	timeout = "1m"
type dirTOML struct {
	Profile   string     `toml:"profile"`
	ReadDeny  []string   `toml:"read_deny"`
	WriteDeny []string   `toml:"write_deny"`
	NetAllow  []string   `toml:"net_allow"`
	NetDeny   []string   `toml:"net_deny"`
	Limits    limitsTOML `toml:"limits"`
}

// maxDirFile bounds a .moat-profile: a few lines of TOML.
const maxDirFile = 64 << 10

// narrow applies every .moat-profile from the workspace up to the root.
func (r *Resolver) narrow(cat *Catalog, p *wire.Profile, homes []string) (*wire.Profile, error) {
	for dir := p.Workspace; ; dir = filepath.Dir(dir) {
		path := filepath.Join(dir, DirFile)
		data, err := smallfile.Read(path, maxDirFile)
		switch {
		case err == nil:
			if p, err = r.applyDirFile(cat, p, path, data, homes); err != nil {
				return nil, err
			}
		case errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR):
			// A directory by that name narrows nothing (sandboxd puts one
			// there, read-only, while a run must not create the file).
		case errors.Is(err, smallfile.ErrNotRegular) || errors.Is(err, smallfile.ErrTooLarge):
			// A FIFO, a device or a huge file (a run may leave one) may
			// narrow too: refuse, having read none or little of it.
			return nil, wire.Errorf(wire.CodeBadRequest, "%s is %v: a .moat-profile is a short regular file; fix or remove it", path, unwrapPath(err))
		default:
			// A file we cannot read may narrow: refuse rather than guess.
			return nil, wire.Errorf(wire.CodeDenied, "cannot read %s (%v), so the profile cannot be narrowed as it asks: fix its permissions", path, unwrapPath(err))
		}
		if dir == "/" {
			return p, nil
		}
	}
}

func (r *Resolver) applyDirFile(cat *Catalog, p *wire.Profile, path string, data []byte, homes []string) (*wire.Profile, error) {
	var d dirTOML
	md, err := toml.Decode(string(data), &d)
	if err != nil {
		return nil, wire.Errorf(wire.CodeBadRequest, "%s: %v: fix or remove the file", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, wire.Errorf(wire.CodeDenied, "%s tries to widen the profile: %q is not something a %s may set; it may only narrow, with profile, read_deny, write_deny, net_allow, net_deny and [limits]", path, und[0].String(), DirFile)
	}
	dir := filepath.Dir(path)
	if d.Profile != "" {
		spec, ok := cat.specs[canonical(d.Profile)]
		if !ok {
			return nil, wire.Errorf(wire.CodeBadRequest, "%s: profile = %q is unknown: use one of %s", path, d.Profile, strings.Join(cat.names, ", "))
		}
		ceiling, err := r.build(cat, spec, p.Workspace, p.Cwd, homes)
		if err != nil {
			return nil, err
		}
		p = Meet(p, ceiling)
	}
	var wdGlobs []string
	extra := func(key string, list []string) ([]string, error) {
		var out []string
		for _, e := range list {
			if strings.ContainsRune(e, 0) || e == "" {
				return nil, wire.Errorf(wire.CodeBadRequest, "%s: %s entry %q is not a path", path, key, e)
			}
			if !filepath.IsAbs(e) && e != "~" && !strings.HasPrefix(e, "~/") {
				e = filepath.Join(dir, e)
			}
			out = append(out, e)
		}
		if key == "write_deny" {
			wdGlobs = patterns(out, homes)
		}
		return expand(out, homes)
	}
	rd, err := extra("read_deny", d.ReadDeny)
	if err != nil {
		return nil, err
	}
	wd, err := extra("write_deny", d.WriteDeny)
	if err != nil {
		return nil, err
	}
	p.FS.ReadDeny = tidy(append(p.FS.ReadDeny, rd...))
	p.FS.WriteDeny = tidy(append(p.FS.WriteDeny, wd...))
	if len(wdGlobs) > 0 {
		p.FS.WriteDenyGlobs = tidy(append(p.FS.WriteDenyGlobs, wdGlobs...))
	}
	if len(d.NetAllow) > 0 {
		if err := checkHosts(d.NetAllow); err != nil {
			return nil, wire.Errorf(wire.CodeBadRequest, "%s: %v", path, err)
		}
		p.Net = meetNet(p.Net, wire.Net{Mode: wire.NetAllowlist, Allow: d.NetAllow})
	}
	if len(d.NetDeny) > 0 {
		if err := checkDeny(d.NetDeny); err != nil {
			return nil, wire.Errorf(wire.CodeBadRequest, "%s: %v", path, err)
		}
		p.Net = meetNet(p.Net, wire.Net{Mode: wire.NetFull, Deny: d.NetDeny})
	}
	p.Limits = d.Limits.apply(p.Limits, true)
	p.NarrowedBy = append(p.NarrowedBy, path)
	return p, nil
}

// Meet is the greatest profile both a and b allow: writes only where both
// write, reads beyond the system only where both read, every denied path of either, the smaller network, the lower limits,
// only the variables both pass, the stricter irreversible setting. It keeps a's name, source and fixed variables,
// and a's base unless that is trusted and b's is not: the sandbox confines
// nothing for base trusted, so the meet takes b's.
func Meet(a, b *wire.Profile) *wire.Profile {
	m := *a
	if a.Base == Trusted && b.Base != Trusted {
		m.Base = b.Base
	}
	var write []string
	for _, x := range a.FS.Write {
		for _, y := range b.FS.Write {
			switch {
			case within(x, y):
				write = append(write, x)
			case within(y, x):
				write = append(write, y)
			}
		}
	}
	m.FS = wire.FS{
		Write:     tidy(write),
		Read:      meetRead(a, b),
		ReadDeny:  tidy(concat(a.FS.ReadDeny, b.FS.ReadDeny)),
		WriteDeny: tidy(concat(a.FS.WriteDeny, b.FS.WriteDeny)),
	}
	if g := concat(a.FS.WriteDenyGlobs, b.FS.WriteDenyGlobs); len(g) > 0 {
		m.FS.WriteDenyGlobs = tidy(g)
	}
	for _, u := range a.FS.Unguarded { // guarded unless both leave it
		if slices.Contains(b.FS.Unguarded, u) {
			m.FS.Unguarded = append(m.FS.Unguarded, u)
		}
	}
	m.Net = meetNet(a.Net, b.Net)
	m.Limits = wire.Limits{
		TimeoutMS:   min(a.Limits.TimeoutMS, b.Limits.TimeoutMS),
		MemoryBytes: min(a.Limits.MemoryBytes, b.Limits.MemoryBytes),
		Pids:        min(a.Limits.Pids, b.Limits.Pids),
		CPUMS:       min(a.Limits.CPUMS, b.Limits.CPUMS),
		OutputBytes: min(a.Limits.OutputBytes, b.Limits.OutputBytes),
		FileBytes:   min(a.Limits.FileBytes, b.Limits.FileBytes),
	}
	var pass []string
	for _, v := range a.Env.Pass {
		if slices.Contains(b.Env.Pass, v) {
			pass = append(pass, v)
		}
	}
	m.Env = wire.Env{Pass: pass, Set: cloneMap(a.Env.Set)}
	m.Irreversible = stricter(a.Irreversible, b.Irreversible)
	meetCaches(&m, a)
	return &m
}

// stricter is the stricter of two irreversible settings: allow < prompt
// (also written empty) < deny.
func stricter(a, b string) string {
	rank := map[string]int{wire.VerdictAllow: 0, "": 1, wire.VerdictPrompt: 1, wire.VerdictDeny: 2}
	switch ra, rb := rank[a], rank[b]; {
	case ra > rb:
		return a
	case rb > ra:
		return b
	case a == "":
		return b
	}
	return a
}

// meetRead is what both a and b let a command read beyond the system and
// the workspace: a's read entries inside what b reads or writes, and b's
// read entries inside what a reads. A trusted side reads everything.
func meetRead(a, b *wire.Profile) []string {
	switch {
	case b.Base == Trusted:
		return slices.Clone(a.FS.Read)
	case a.Base == Trusted:
		return slices.Clone(b.FS.Read)
	}
	var read []string
	for _, x := range a.FS.Read {
		if slices.ContainsFunc(concat(b.FS.Read, b.FS.Write), func(y string) bool { return within(x, y) }) {
			read = append(read, x)
		}
	}
	for _, y := range b.FS.Read {
		if slices.ContainsFunc(a.FS.Read, func(x string) bool { return within(y, x) }) {
			read = append(read, y)
		}
	}
	if len(read) == 0 {
		return nil
	}
	return tidy(read)
}
