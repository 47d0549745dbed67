package mcpserver

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moatsec/moat/pkg/wire"
)

// The bounds a model cannot cross: a profile no wider than the server's, a
// working directory inside the workspace. Both are checked here, before
// anything is sent; profiled and sandboxd check the directory again.

// grant returns the profile to use for a request that asks for name: the
// server's own when empty, else name when its resolved policy is no wider
// than the server's in any respect.
func (s *mcpServer) grant(ctx context.Context, name, cwd string) (string, error) {
	if name == "" || name == s.profile {
		return s.profile, nil
	}
	max, err := s.bus.Resolve(ctx, &wire.ResolveRequest{Profile: s.profile, Workspace: s.workspace, Cwd: cwd})
	if err != nil {
		return "", fmt.Errorf("resolve the server's profile %s: %w", s.profile, err)
	}
	want, err := s.bus.Resolve(ctx, &wire.ResolveRequest{Profile: name, Workspace: s.workspace, Cwd: cwd})
	if err != nil {
		return "", fmt.Errorf("profile %q: %w", name, err)
	}
	if why := wider(want, max); why != "" {
		return "", fmt.Errorf("profile %s is wider than %s, the most this server grants (%s): ask for %s or a narrower one; only whoever starts moat mcp can grant more", name, s.profile, why, s.profile)
	}
	return name, nil
}

// wider says how p allows something max does not, or "" when it does not.
func wider(p, max *wire.Profile) string {
	if p.Base == "trusted" && max.Base != "trusted" {
		return "it drops the filesystem and network confinement"
	}
	for _, w := range p.FS.Write {
		if !under(w, max.FS.Write) {
			return "it writes " + w
		}
	}
	for _, r := range p.FS.Read {
		if max.Base != "trusted" && !under(r, max.FS.Read) && !under(r, max.FS.Write) {
			return "it reads " + r
		}
	}
	for _, m := range max.FS.ReadDeny {
		if !under(m, p.FS.ReadDeny) {
			return "it does not hide " + m
		}
	}
	// What max keeps read-only, p must not write: it writes nothing there,
	// or denies it too.
	for _, m := range max.FS.WriteDeny {
		writes := under(m, p.FS.Write) || slices.ContainsFunc(p.FS.Write, func(w string) bool { return within(w, m) })
		if writes && !under(m, p.FS.WriteDeny) {
			return "it writes " + m
		}
	}
	// The write_deny patterns are checked against what a run created, after
	// it: p keeps every one of max's, unless it writes nothing.
	if len(p.FS.Write) > 0 {
		for _, g := range max.FS.WriteDenyGlobs {
			if !slices.Contains(p.FS.WriteDenyGlobs, g) {
				return "it does not keep " + g + " read-only"
			}
		}
	}
	// What max guards in its workspace, p guards too where it writes it.
	if p.GuardsWorkspace() {
		for _, u := range p.FS.Unguarded {
			if max.GuardsWorkspace() && !slices.Contains(max.FS.Unguarded, u) {
				return "it leaves " + u + " writable"
			}
		}
	}
	rank := map[string]int{wire.NetNone: 0, wire.NetAllowlist: 1, wire.NetFull: 2}
	pr, ok1 := rank[p.Net.Mode]
	mr, ok2 := rank[max.Net.Mode]
	switch {
	case !ok1 || !ok2 || pr > mr:
		return "its network is " + p.Net.Mode
	case pr == 1 && mr == 1:
		for _, h := range p.Net.Allow {
			if !slices.Contains(max.Net.Allow, h) {
				return "it reaches " + h
			}
		}
	}
	if pr > 0 {
		for _, h := range max.Net.Deny {
			if !slices.Contains(p.Net.Deny, h) {
				return "it reaches " + h + ", which " + max.Name + " denies"
			}
		}
	}
	// Irreversible operations: allow < prompt (unset) < deny.
	strict := map[string]int{wire.VerdictAllow: 0, "": 1, wire.VerdictPrompt: 1, wire.VerdictDeny: 2}
	if ps, ok := strict[p.Irreversible]; !ok || ps < strict[max.Irreversible] {
		return "it lets irreversible operations through (irreversible = " + p.Irreversible + ")"
	}
	pl, ml := p.Limits, max.Limits
	for _, l := range []struct {
		name   string
		p, max int64
	}{{"timeout", pl.TimeoutMS, ml.TimeoutMS}, {"memory", pl.MemoryBytes, ml.MemoryBytes}, {"pids", pl.Pids, ml.Pids},
		{"cpu", pl.CPUMS, ml.CPUMS}, {"output", pl.OutputBytes, ml.OutputBytes}, {"file size", pl.FileBytes, ml.FileBytes}} {
		if l.p > l.max {
			return "its " + l.name + " limit is higher"
		}
	}
	for _, v := range p.Env.Pass {
		if !slices.Contains(max.Env.Pass, v) {
			return "it passes " + v
		}
	}
	for k, v := range p.Env.Set {
		if max.Env.Set[k] != v {
			return "it sets " + k
		}
	}
	return ""
}

// under reports whether path p is one of roots or below one.
func under(p string, roots []string) bool {
	return slices.ContainsFunc(roots, func(r string) bool { return within(p, r) })
}

// within reports whether path p is root or below it.
func within(p, root string) bool {
	return p == root || root == "/" || strings.HasPrefix(p, root+"/")
}

// cwd resolves the working directory a model asks for: relative to the
// workspace or absolute, symlinks resolved, and inside the workspace.
func (s *mcpServer) cwd(dir string) (string, error) {
	if dir == "" {
		return s.workspace, nil
	}
	if strings.ContainsRune(dir, 0) {
		return "", fmt.Errorf("cwd contains a NUL byte")
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(s.workspace, dir)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", fmt.Errorf("cwd %s: %w", dir, err)
	}
	if !within(real, s.workspace) {
		return "", fmt.Errorf("cwd %s is outside the workspace %s (after symlinks: %s): commands run only inside it", dir, s.workspace, real)
	}
	return real, nil
}
