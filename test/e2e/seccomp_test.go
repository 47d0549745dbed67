//go:build linux

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/wire"
	"github.com/moatsec/moat/test/testbin"
)

// mounterC tries one mount and says how it failed.
const mounterC = `#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
int main(void) {
	if (mount("none", ".", "tmpfs", 0, 0) != 0) {
		fprintf(stderr, "mount: %s\n", strerror(errno));
		return 1;
	}
	puts("mounted");
	return 0;
}
`

// TestSeccompRefusal: a command that fails after the seccomp filter refused
// it a system call gets a refusal naming the call, the same in moat run
// --json, on moat run's stderr, in moat mcp's run tool and in the audit
// trail's run.exit record.
func TestSeccompRefusal(t *testing.T) {
	gcc := tool(t, "gcc", "apt-get install gcc")
	e, _ := agentStack(t, "")
	src := filepath.Join(e.ws, "mounter.c")
	if err := os.WriteFile(src, []byte(mounterC), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(gcc, "-o", filepath.Join(e.ws, "mounter"), src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	os.Chmod(e.ws, 0o755)

	m := e.cmd("moat", "run", "--json", "--profile", "workspace-write", "--", "./mounter")
	m.Dir = e.ws
	got := runCmd(t, m, "")
	var res wire.RunResult
	if err := json.Unmarshal([]byte(got.stdout), &res); err != nil {
		t.Fatalf("moat run --json: %v\n%+v", err, short(got))
	}
	if res.ExitCode != 1 || string(res.Stderr) != "mount: Operation not permitted\n" {
		t.Fatalf("the mount must fail with EPERM: exit %d, stdout %q, stderr %q", res.ExitCode, res.Stdout, res.Stderr)
	}
	want := wire.SyscallDenial{Syscall: "mount", Count: 1, Process: "mounter", Reason: "no mounts, namespaces or chroot"}
	r := res.Refusal
	if r == nil || r.Layer != wire.LayerSeccomp || r.Kind != wire.RefusedSyscall || r.Target != "mount" ||
		len(r.Syscalls) != 1 || r.Syscalls[0] != want || !strings.Contains(r.Message, "mount") {
		t.Fatalf("want a seccomp refusal of mount, got %+v", r)
	}
	if len(res.SyscallsDenied) != 1 || res.SyscallsDenied[0] != want {
		t.Fatalf("syscalls_denied: %+v", res.SyscallsDenied)
	}

	// For people (and models reading stderr): one line a kind.
	m = e.cmd("moat", "run", "--profile", "workspace-write", "--", "./mounter")
	m.Dir = e.ws
	got = runCmd(t, m, "")
	line := "moat: seccomp refused mount ×1 by mounter (profile workspace-write: no mounts, namespaces or chroot)\n"
	if got.code != 1 || got.stderr != "mount: Operation not permitted\n"+line {
		t.Fatalf("moat run: exit %d, stderr %q, want the command's line and %q", got.code, got.stderr, line)
	}

	// moat mcp's run tool: the same record, structured.
	s := mcpSession(t, e, nil, "--workspace", e.ws, "--profile", "workspace-write")
	var mr mcpResult
	call(t, s, "run", map[string]any{"argv": []string{"./mounter"}}, &mr)
	if mr.Refusal == nil || mr.Refusal.Layer != wire.LayerSeccomp || len(mr.Refusal.Syscalls) != 1 || mr.Refusal.Syscalls[0] != want {
		t.Fatalf("moat mcp run: %+v", mr)
	}

	// The audit trail's run.exit carries it.
	testbin.Eventually(t, 20*time.Second, "the run.exit record with its refused syscalls", func() error {
		out, err := e.cmd("moat", "audit", "query", "--kind", "run.exit", "--request", res.RequestID, "--json").Output()
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var rec struct {
				Event wire.AuditEvent `json:"event"`
			}
			ev := &rec.Event
			if json.Unmarshal(sc.Bytes(), &rec) != nil || ev.Kind != "run.exit" || ev.RequestID != res.RequestID {
				continue
			}
			b, _ := json.Marshal(ev.Detail["syscalls_denied"])
			var denied []wire.SyscallDenial
			if json.Unmarshal(b, &denied) != nil || len(denied) != 1 || denied[0] != want {
				return fmt.Errorf("run.exit syscalls_denied: %s", b)
			}
			return nil
		}
		return fmt.Errorf("no run.exit for %s yet: %s", res.RequestID, out)
	})
}

// TestFSRefusal: a command that fails writing where the profile keeps it
// from writing gets a refusal naming the path and the rule, in moat run
// --json and on moat run's stderr; the file is not written.
func TestFSRefusal(t *testing.T) {
	e, _ := agentStack(t, "")
	target := "/etc/moat-e2e-fs-refusal"
	script := filepath.Join(e.ws, "w.sh")
	if err := os.WriteFile(script, []byte("echo x > "+target+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := e.cmd("moat", "run", "--json", "--profile", "workspace-write", "--", "sh", "w.sh")
	m.Dir = e.ws
	got := runCmd(t, m, "")
	var res wire.RunResult
	if err := json.Unmarshal([]byte(got.stdout), &res); err != nil {
		t.Fatalf("moat run --json: %v\n%+v", err, short(got))
	}
	if _, err := os.Stat(target); err == nil {
		t.Fatalf("%s was written", target)
	}
	want := wire.PathDenial{Path: target, Access: "write", Error: "EROFS", Rule: "write", Reason: "not under its writable roots"}
	r := res.Refusal
	if res.ExitCode == 0 || r == nil || r.Layer != wire.LayerFS || r.Kind != wire.RefusedPath || r.Target != target ||
		len(r.Paths) != 1 || r.Paths[0] != want || len(res.PathsDenied) != 1 {
		t.Fatalf("want a filesystem refusal of %s, got %+v (exit %d, stderr %q)", target, r, res.ExitCode, res.Stderr)
	}
	m = e.cmd("moat", "run", "--profile", "workspace-write", "--", "sh", "w.sh")
	m.Dir = e.ws
	got = runCmd(t, m, "")
	line := "moat: filesystem refused write to " + target + " (profile workspace-write: not under its writable roots)\n"
	if got.code == 0 || !strings.HasSuffix(got.stderr, "Read-only file system\n"+line) {
		t.Fatalf("moat run: exit %d, stderr %q, want it to end with %q", got.code, got.stderr, line)
	}

	// moat sh still dies by the command's own signal, as sh does, with the
	// refusal said.
	m = e.cmd("moat", "sh", "--profile", "workspace-write", "-c", "sh w.sh; kill -TERM $$")
	m.Dir = e.ws
	got = runCmd(t, m, "")
	if got.signal != syscall.SIGTERM || !strings.HasSuffix(got.stderr, line) {
		t.Fatalf("moat sh: signal %v, exit %d, stderr %q: want SIGTERM and %q", got.signal, got.code, got.stderr, line)
	}
}
