//go:build linux

package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/moatsec/moat/pkg/wire"
)

// agentStack runs busd, profiled, policyd, sandboxd and auditd as processes
// with a workspace outside /tmp (as real ones are); the env's variables
// point the moat CLI at it.
func agentStack(t *testing.T, profilesTOML string, policydArgs ...string) (*env, string) {
	t.Helper()
	e := newEnv(t)
	if profilesTOML != "" {
		if err := os.WriteFile(filepath.Join(e.home, "profiles.toml"), []byte(profilesTOML), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	base, err := os.MkdirTemp("/var/tmp", "moat-e2e-agents-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	e.ws = filepath.Join(base, "ws")
	if err := os.MkdirAll(e.ws, 0o755); err != nil {
		t.Fatal(err)
	}
	_, url := startBus(t, e)
	start(t, e.cmd("profiled"))
	start(t, e.cmd("policyd", append([]string{"--approval-timeout", "3s"}, policydArgs...)...))
	start(t, e.cmd("sandboxd"))
	start(t, e.cmd("auditd"))
	c := dialWait(t, e, url)
	for _, s := range []string{"profiled", "policyd", "sandboxd", "auditd"} {
		waitService(t, c, s, 1)
	}
	return e, url
}

// outcome is what a process did, as its caller sees it.
type outcome struct {
	stdout, stderr string
	code           int
	signal         syscall.Signal // when it died by a signal
}

func runCmd(t *testing.T, c *exec.Cmd, stdin string) outcome {
	t.Helper()
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if stdin != "" {
		c.Stdin = strings.NewReader(stdin)
	}
	err := c.Run()
	o := outcome{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		ws := ee.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			o.signal = ws.Signal()
		}
		o.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run %s: %v", c.Path, err)
	}
	return o
}

// TestShSideBySide runs a table of scripts with bash -c and with moat sh -c in
// the same directory and environment: the same stdout, stderr and status
// where the policy allows, a refusal with its record where it does not.
func TestShSideBySide(t *testing.T) {
	e, _ := agentStack(t, "")
	os.WriteFile(filepath.Join(e.ws, "in.txt"), []byte("b\na\nc\n"), 0o644)
	profile := "MOAT_PROFILE=workspace-write"
	cases := []struct {
		name, script, stdin string
	}{
		{"echo", `echo hello`, ""},
		{"pipe", `printf 'b\na\nc\n' | sort | tr a-z A-Z`, ""},
		{"stderr apart", `echo out; echo err >&2; echo out2`, ""},
		{"exit status", `echo before; exit 42`, ""},
		{"set -e", `set -e; echo one; false; echo never`, ""},
		{"redirect inside", `echo kept > out.txt && cat out.txt && rm out.txt`, ""},
		{"read a file", `sort < in.txt`, ""},
		{"stdin", `tr a-z A-Z`, "from stdin\n"},
		{"stdin lines", `while read l; do echo "[$l]"; done`, "x\ny\n"},
		{"arguments", `echo "$0:$1:$#"`, ""},
		{"quoting", `printf '%s|' "a b" 'c  d' "it's"; echo`, ""},
		{"signal status", `sleep 30 & kill -TERM $!; wait $!; echo "status $?"`, ""},
		{"large output", `i=0; while [ $i -lt 12000 ]; do echo "line $i of the large output"; i=$((i+1)); done`, ""},
		{"command not found", `no-such-command-xyz 2>/dev/null; echo $?`, ""},
		{"subshell status", `(exit 3); echo $?`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"-c", tc.script}
			if tc.name == "arguments" {
				args = append(args, "name", "one", "two")
			}
			sh := exec.Command("bash", args...) // moat sh runs bash -c; Debian's sh is dash
			sh.Dir, sh.Env = e.ws, e.vars
			want := runCmd(t, sh, tc.stdin)
			m := e.cmd("moat", append([]string{"sh"}, args...)...)
			m.Dir, m.Env = e.ws, append(e.vars, profile)
			got := runCmd(t, m, tc.stdin)
			if got != want {
				t.Fatalf("moat sh differs from sh\n got: %+v\nwant: %+v", short(got), short(want))
			}
		})
	}

	t.Run("script on stdin", func(t *testing.T) {
		m := e.cmd("moat", "sh")
		m.Dir, m.Env = e.ws, append(e.vars, profile)
		got := runCmd(t, m, "echo from a script; exit 5\n")
		if got.code != 5 || got.stdout != "from a script\n" {
			t.Fatalf("script on stdin: %+v", short(got))
		}
	})

	t.Run("refused", func(t *testing.T) {
		canary := filepath.Join(filepath.Dir(e.ws), "canary")
		m := e.cmd("moat", "sh", "-c", "echo pwned > "+canary)
		m.Dir, m.Env = e.ws, append(e.vars, profile)
		got := runCmd(t, m, "")
		if _, err := os.Stat(canary); err == nil {
			t.Fatal("the refused script wrote outside the workspace")
		}
		if got.code != 77 || !strings.Contains(got.stderr, "refused by policy (fs.write-outside)") {
			t.Fatalf("refusal: %+v", short(got))
		}
		m = e.cmd("moat", "sh", "--json", "-c", "echo pwned > "+canary)
		m.Dir, m.Env = e.ws, append(e.vars, profile)
		got = runCmd(t, m, "")
		var res wire.RunResult
		if err := json.Unmarshal([]byte(got.stdout), &res); err != nil || res.Refusal == nil {
			t.Fatalf("moat sh --json: %v\n%s", err, got.stdout)
		}
		r := res.Refusal
		if r.Layer != wire.LayerPolicy || r.Rule != "fs.write-outside" || r.Kind != wire.RefusedPath || r.Allow.Approval || r.Allow.Profile != "trusted" && r.Allow.Profile != "" || r.Message == "" {
			t.Fatalf("refusal record: %+v", r)
		}
	})
}

func short(o outcome) outcome {
	if len(o.stdout) > 300 {
		o.stdout = o.stdout[:150] + "…" + o.stdout[len(o.stdout)-150:]
	}
	return o
}

// TestLimitCauses runs commands that each hit one limit of a tight profile
// and checks that the run says which: the OOM killer, the pids limit, the
// CPU budget, the timeout.
func TestLimitCauses(t *testing.T) {
	e, _ := agentStack(t, `
[profiles.tight]
extends = "workspace-write"
[profiles.tight.limits]
memory = "64MiB"
pids = 16
cpu = "1s"
timeout = "60s"
`)
	cases := []struct {
		name, layer, script string
		args                []string
	}{
		{"memory", wire.LayerMemory, `x=$(head -c 300000000 /dev/zero | tr "\\0" a); echo ${#x}`, nil},
		{"pids", wire.LayerPids, `sh -c 'for i in $(seq 40); do sleep 20 & done; wait'`, nil}, // dash does not retry a fork
		{"cpu", wire.LayerCPU, `while :; do :; done`, nil},
		{"timeout", wire.LayerTimeout, `sleep 30`, []string{"--timeout", "1s"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{"sh", "--json", "--profile", "tight"}, tc.args...), "-c", tc.script)
			m := e.cmd("moat", args...)
			m.Dir = e.ws
			got := runCmd(t, m, "")
			var res wire.RunResult
			if err := json.Unmarshal([]byte(got.stdout), &res); err != nil {
				t.Fatalf("moat sh --json: %v\n%+v", err, short(got))
			}
			if res.Refusal == nil || res.Refusal.Layer != tc.layer || res.Refusal.Kind != wire.RefusedLimit || res.Refusal.Allow.Limit == "" {
				t.Fatalf("want a %s refusal, got %+v (exit %d, signal %q, stderr %q)", tc.layer, res.Refusal, res.ExitCode, res.Signal, res.Stderr)
			}
			if res.ExitCode == 0 {
				t.Fatalf("a run stopped by the %s limit exited 0", tc.layer)
			}
			// For people, the same cause on stderr.
			m = e.cmd("moat", append(args[:1], args[2:]...)...)
			m.Dir = e.ws
			if got := runCmd(t, m, ""); !strings.Contains(got.stderr, "refused by "+tc.layer) {
				t.Fatalf("stderr does not name the %s limit: %q", tc.layer, got.stderr)
			}
		})
	}
}
