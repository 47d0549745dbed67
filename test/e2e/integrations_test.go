//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// snippets reads the blocks of docs/integrations.md marked <!-- tested: NAME -->.
func snippets(t *testing.T) map[string]string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(repoRoot, "docs", "integrations.md"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)<!-- tested: ([a-z-]+) -->\n```[a-z]*\n(.*?)```")
	out := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(string(doc), -1) {
		out[m[1]] = m[2]
	}
	for _, name := range []string{"claude-hook", "claude-mcp", "codex-mcp", "generic-sh", "ci-shell"} {
		if out[name] == "" {
			t.Fatalf("docs/integrations.md has no tested block %q", name)
		}
	}
	return out
}

// TestIntegrationsAsDocumented configures each agent exactly as
// docs/integrations.md says and runs it against a real stack: the Claude
// Code hook and MCP server, Codex's MCP server, moat sh for a generic agent
// and as a CI runner's shell.
func TestIntegrationsAsDocumented(t *testing.T) {
	doc := snippets(t)
	e, _ := agentStack(t, "")
	e.vars = append(e.vars, "PATH="+binDir+":"+os.Getenv("PATH"))
	os.WriteFile(filepath.Join(e.ws, "Makefile"), []byte("test:\n\t@echo tests pass\nbuild:\n\t@echo built\n"), 0o644)
	shell := func(script, stdin string, extra ...string) outcome {
		t.Helper()
		c := exec.Command("bash", "-c", script)
		c.Dir, c.Env = e.ws, append(append([]string{}, e.vars...), extra...)
		return runCmd(t, c, stdin)
	}

	t.Run("claude-hook", func(t *testing.T) {
		var settings struct {
			Hooks map[string][]struct {
				Matcher string `json:"matcher"`
				Hooks   []struct {
					Type    string `json:"type"`
					Command string `json:"command"`
				} `json:"hooks"`
			} `json:"hooks"`
		}
		if err := json.Unmarshal([]byte(doc["claude-hook"]), &settings); err != nil {
			t.Fatal(err)
		}
		pre := settings.Hooks["PreToolUse"]
		if len(pre) != 1 || pre[0].Matcher != "Bash" || len(pre[0].Hooks) != 1 || pre[0].Hooks[0].Type != "command" {
			t.Fatalf("settings: %+v", settings)
		}
		in := preToolUse(e.ws, "Bash", map[string]any{"command": "make test > made.txt; cat made.txt", "description": "run the tests"})
		got := shell(pre[0].Hooks[0].Command, in, "CLAUDE_PROJECT_DIR="+e.ws) // as Claude Code runs a hook
		var h hookOut
		if err := json.Unmarshal([]byte(got.stdout), &h); err != nil || h.HookSpecificOutput.PermissionDecision != "allow" {
			t.Fatalf("hook: %v %+v", err, got)
		}
		cmd, _ := h.HookSpecificOutput.UpdatedInput["command"].(string)
		if got := shell(cmd, ""); got.stdout != "tests pass\n" || got.code != 0 {
			t.Fatalf("the rewritten command %q: %+v", cmd, got)
		}
	})

	mcpRun := func(t *testing.T, command string, args []string, dir string) {
		t.Helper()
		c := exec.Command(command, args...)
		c.Dir, c.Env, c.Stderr = dir, e.vars, os.Stderr
		if c.Err != nil {
			t.Fatal(c.Err)
		}
		s, err := mcp.NewClient(&mcp.Implementation{Name: "doc", Version: "1"}, nil).Connect(context.Background(), &mcp.CommandTransport{Command: c}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var r mcpResult
		res := call(t, s, "run", map[string]any{"script": "make build > built.txt; cat built.txt"}, &r)
		if r.Stdout != "built\n" || r.Profile != "workspace-write" || r.Cwd != e.ws {
			t.Fatalf("run through %s %v: %+v\n%s", command, args, r, text(res))
		}
	}

	t.Run("claude-mcp", func(t *testing.T) {
		var cfg struct {
			MCPServers map[string]struct {
				Type    string   `json:"type"`
				Command string   `json:"command"`
				Args    []string `json:"args"`
			} `json:"mcpServers"`
		}
		if err := json.Unmarshal([]byte(doc["claude-mcp"]), &cfg); err != nil {
			t.Fatal(err)
		}
		m := cfg.MCPServers["moat"]
		if m.Type != "stdio" || m.Command != "moat" {
			t.Fatalf(".mcp.json: %+v", cfg)
		}
		mcpRun(t, filepath.Join(binDir, m.Command), m.Args, e.ws) // Claude Code starts it in the project
	})

	t.Run("codex-mcp", func(t *testing.T) {
		var cfg struct {
			MCPServers map[string]struct {
				Command        string   `toml:"command"`
				Args           []string `toml:"args"`
				ToolTimeoutSec int      `toml:"tool_timeout_sec"`
			} `toml:"mcp_servers"`
		}
		md, err := toml.Decode(doc["codex-mcp"], &cfg)
		if err != nil || len(md.Undecoded()) > 0 {
			t.Fatalf("config.toml: %v %v", err, md.Undecoded())
		}
		m := cfg.MCPServers["moat"]
		if m.Command != "moat" || m.ToolTimeoutSec < 120+30 {
			t.Fatalf("config.toml: %+v (tool_timeout_sec must outlast the default 2 min timeout)", m)
		}
		args := strings.Join(m.Args, "\x00")
		args = strings.ReplaceAll(args, "/home/you/project", e.ws) // the one thing a reader fills in
		mcpRun(t, filepath.Join(binDir, m.Command), strings.Split(args, "\x00"), "/")
	})

	t.Run("generic-sh", func(t *testing.T) {
		got := shell("set -e\n"+doc["generic-sh"], "")
		want := "tests pass\nbuilt\nfrom stdin\n"
		if got.stdout != want || got.code != 0 {
			t.Fatalf("the documented lines: %+v\nwant stdout %q", got, want)
		}
		if b, _ := os.ReadFile(filepath.Join(e.ws, "build.log")); string(b) != "built\n" {
			t.Fatalf("build.log: %q", b)
		}
	})

	t.Run("ci-shell", func(t *testing.T) {
		line := regexp.MustCompile(`shell: (.*)`).FindStringSubmatch(doc["ci-shell"])
		if line == nil {
			t.Fatal("no shell: line")
		}
		step := filepath.Join(e.ws, "step.sh")
		os.WriteFile(step, []byte("echo step one\nfalse\necho never\n"), 0o644)
		got := shell(strings.ReplaceAll(line[1], "{0}", step), "")
		if got.stdout != "step one\n" || got.code != 1 {
			t.Fatalf("a step failing under -e: %+v", got)
		}
	})
}
