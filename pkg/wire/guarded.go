package wire

import (
	"path/filepath"
	"slices"
)

// Guarded lists, relative to a worktree's top, the write_deny patterns of
// what git hook managers and agents on the host read commands from (see
// package glob for the syntax). Every profile that may write its workspace
// and is not trusted guards them, but for those it names in FS.Unguarded:
// in the workspace and at the top of every repository in it that has a
// .git when a run starts, sandboxd holds what matches read-only for the run
// and moves aside, after it, every match it did not hold; policyd denies a
// command that writes one. A missing name gets no placeholder (unlike the
// protected paths), so one a run creates is on the host until the run
// ends: the list holds what the host reads when a tool starts or a commit
// is made.
var Guarded = []string{
	// git hook managers: read at the next commit on the host
	".pre-commit-config.y*ml", "prek.toml", ".husky",
	"lefthook.*", "lefthook-local.*", ".lefthook*", ".config/lefthook.*", ".config/lefthook-local.*",
	// mise: hooks and templates run at the shell's prompt
	"mise.*toml", ".mise*", "mise/config*.toml", ".config/mise*",
	// agents: lint and test commands, MCP servers, plugins and hooks
	".aider.conf.yml", "opencode.json*", ".opencode", ".continue", ".kiro", ".amazonq", ".roo",
	".windsurf", ".clinerules", ".qwen", ".junie", ".github/hooks",
	// editors that start the language servers a project names
	".zed", ".helix",
}

// GuardsWorkspace reports whether p guards the Guarded names: it may
// write its workspace and is not trusted (which writes "/").
func (p *Profile) GuardsWorkspace() bool {
	if slices.Contains(p.FS.Write, "/") {
		return false
	}
	for _, w := range p.FS.Write {
		if w == p.Workspace {
			return true
		}
	}
	return false
}

// Guards is the absolute patterns p guards under top (the workspace, or a
// repository's top inside it): none when p does not guard its workspace.
func (p *Profile) Guards(top string) []string {
	if !p.GuardsWorkspace() {
		return nil
	}
	out := make([]string, 0, len(Guarded))
	for _, g := range Guarded {
		if !slices.Contains(p.FS.Unguarded, g) {
			out = append(out, filepath.Join(top, g))
		}
	}
	return out
}
