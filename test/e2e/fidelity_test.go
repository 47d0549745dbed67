//go:build linux

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/wire"
	"github.com/moatsec/moat/test/testbin"
)

// TestArgvEnvStdinFidelity runs a program that prints its argv, one
// variable of its environment and its stdin through every path a command
// takes (moat run, sandboxd exec, moat sh, moat mcp, the Go client) with home paths and
// secret-shaped words, and compares the output byte for byte: the audit
// trail sanitizes its own copies, never what runs.
func TestArgvEnvStdinFidelity(t *testing.T) {
	e := newEnv(t)
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	ws := e.ws
	script := "printf '[%s]\\n' \"$@\"; printf 'env=[%s]\\n' \"$SHOW\"; cat\n"
	if err := os.WriteFile(filepath.Join(ws, "show.sh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{home + "/x", "password=hunter2", "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
		"AKIAIOSFODNN7EXAMPLE", "https://bob:hunter2@example.com/r.git", "--token", "s3cr3t", "Bearer abcdef0123456789abcdef"}
	envVal := home + "/.ssh token=t0k"
	stdin := "stdin " + home + "/y password=hunter2\n"
	var want strings.Builder
	for _, a := range args {
		want.WriteString("[" + a + "]\n")
	}
	want.WriteString("env=[" + envVal + "]\n" + stdin)

	_, url := startBus(t, e)
	start(t, e.cmd("profiled"))
	start(t, e.cmd("policyd", "--approval-timeout", "2s"))
	start(t, e.cmd("sandboxd"))
	start(t, e.cmd("auditd"))
	c := dialWait(t, e, url)
	waitService(t, c, "sandboxd", 1)
	waitService(t, c, "auditd", 1)

	argv := append([]string{"sh", "show.sh"}, args...)
	through := func(name string, cmd *exec.Cmd) {
		t.Helper()
		cmd.Dir = ws
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, errb.String())
		}
		if out.String() != want.String() {
			t.Errorf("%s changed what the command got:\n got %q\nwant %q", name, out.String(), want.String())
		}
	}
	flags := []string{"--profile", "workspace-write", "--workspace", ws, "--stdin", "--env", "SHOW=" + envVal, "--"}
	through("moat run", e.cmd("moat", append(append([]string{"run"}, flags...), argv...)...))
	through("sandboxd exec", e.cmd("sandboxd", append(append([]string{"exec"}, flags...), argv...)...))
	sh := e.cmd("moat", append([]string{"sh", "--profile", "workspace-write", "--workspace", ws, "-c", `sh show.sh "$@"`, "moat-sh"}, args...)...)
	sh.Env = append(sh.Env, "SHOW="+envVal)
	through("moat sh", sh)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req := &wire.RunRequest{Profile: "workspace-write", Workspace: ws, Cwd: ws, Argv: append([]string(nil), argv...),
		Env: map[string]string{"SHOW": envVal}, Stdin: []byte(stdin)}
	res, err := c.Run(ctx, req, nil)
	if err != nil {
		t.Fatalf("client run: %v", err)
	}
	if string(res.Stdout) != want.String() || res.ExitCode != 0 {
		t.Errorf("the Go client's run changed what the command got (exit %d):\n got %q\nwant %q\n%s", res.ExitCode, res.Stdout, want.String(), res.Stderr)
	}
	if strings.Join(req.Argv, "\x00") != strings.Join(argv, "\x00") || req.Env["SHOW"] != envVal {
		t.Errorf("the Go client's request was rewritten: %q %q", req.Argv, req.Env)
	}

	// The MCP server's run tool takes argv and stdin (no environment: the
	// command gets the profile's).
	ms := mcpSession(t, e, nil, "--workspace", ws, "--profile", "workspace-write")
	var mr mcpResult
	call(t, ms, "run", map[string]any{"argv": argv, "stdin": stdin}, &mr)
	wantMCP := strings.Replace(want.String(), "env=["+envVal+"]", "env=[]", 1)
	if mr.Stdout != wantMCP || mr.ExitCode != 0 {
		t.Errorf("moat mcp's run changed what the command got (exit %d):\n got %q\nwant %q\n%s", mr.ExitCode, mr.Stdout, wantMCP, mr.Stderr)
	}

	// The trail, on the other hand, holds the sanitized copy.
	testbin.Eventually(t, 20*time.Second, "the runs on record", func() error {
		out, err := e.cmd("moat", "audit", "query", "--kind", "run.exit", "--json").Output()
		if err != nil {
			return err
		}
		if strings.Count(string(out), "show.sh") < 4 { // moat run, moat sh, the client, mcp
			return exec.ErrNotFound
		}
		if strings.Contains(string(out), "hunter2") || strings.Contains(string(out), home+"/x") {
			t.Fatalf("a secret or a home path reached the trail:\n%s", out)
		}
		return nil
	})
}

// TestLargeStdin: the standard input moat sh and moat run --stdin say they
// pass on (up to 4 MiB) reaches the command whole, and the MCP run tool's
// (up to 1 MiB) too; past the limit, the caller says so before sending.
func TestLargeStdin(t *testing.T) {
	e, _, _ := runStack(t)
	const big = 3 << 20
	for name, args := range map[string][]string{
		"moat sh":          {"sh", "-c", "wc -c"},
		"moat run --stdin": {"run", "--stdin", "--", "wc", "-c"},
	} {
		cmd := e.cmd("moat", args...)
		cmd.Dir = e.ws
		cmd.Stdin = strings.NewReader(strings.Repeat("x", big))
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != strconv.Itoa(big) {
			t.Errorf("%s with %d bytes of stdin: %v\n%.300s", name, big, err, out)
		}
		cmd = e.cmd("moat", args...)
		cmd.Dir = e.ws
		cmd.Stdin = strings.NewReader(strings.Repeat("x", 5<<20))
		out, err = cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "4 MiB") {
			t.Errorf("%s with 5 MiB of stdin: %v\n%.300s", name, err, out)
		}
	}
	ms := mcpSession(t, e, nil, "--workspace", e.ws, "--profile", "offline")
	var mr mcpResult
	call(t, ms, "run", map[string]any{"argv": []string{"wc", "-c"}, "stdin": strings.Repeat("y", 1<<20)}, &mr)
	if strings.TrimSpace(mr.Stdout) != strconv.Itoa(1<<20) || mr.ExitCode != 0 {
		t.Errorf("moat mcp's run with 1 MiB of stdin: exit %d, %q %q", mr.ExitCode, mr.Stdout, mr.Stderr)
	}
}
