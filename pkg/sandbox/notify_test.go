//go:build linux

package sandbox

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/elastic/go-seccomp-bpf/arch"
	"github.com/moatsec/moat/pkg/sandbox/inside"
	"github.com/moatsec/moat/pkg/wire"
)

// refusedOf is the run's denial of syscall, or fails the test.
func refusedOf(t *testing.T, res *Result, syscall string) wire.SyscallDenial {
	t.Helper()
	for _, d := range res.Syscalls {
		if d.Syscall == syscall {
			return d
		}
	}
	t.Fatalf("no refused %s reported: %+v (exit %d, stderr %q)", syscall, res.Syscalls, res.ExitCode, res.Stderr)
	return wire.SyscallDenial{}
}

func runIn(t *testing.T, p *wire.Profile, timeout time.Duration, argv ...string) *Result {
	t.Helper()
	res, err := Run(context.Background(), &Spec{Argv: argv, Profile: p, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestRefusedSyscallsReported: a syscall the seccomp filter refuses still
// fails with EPERM in the command (the supervisor answers, never lets it
// through), and the run's result names it, with its count, the refusing
// argument and the program that called it.
func TestRefusedSyscallsReported(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatalf("python3 is needed: apt-get install python3")
	}
	_, p := initWorkspace(t, "workspace-write")

	// unshare(1) asks for a user namespace: refused, and said so.
	res := runIn(t, p, 0, "unshare", "-U", "true")
	if res.ExitCode == 0 || !strings.Contains(string(res.Stderr), "Operation not permitted") {
		t.Fatalf("unshare -U: exit %d, stderr %q: want EPERM", res.ExitCode, res.Stderr)
	}
	d := refusedOf(t, res, "unshare")
	if d.Count != 1 || !strings.Contains(d.Detail, "CLONE_NEWUSER") || d.Process != "unshare" || d.Reason == "" {
		t.Errorf("unshare denial: %+v", d)
	}

	// Three ptrace calls, each EPERM in the caller; one kind, counted 3.
	script := `import ctypes
libc = ctypes.CDLL(None, use_errno=True)
for i in range(3):
    r = libc.ptrace(16, 1, 0, 0)
    print(r, ctypes.get_errno())
`
	res = runIn(t, p, 0, "python3", "-c", script)
	if got := string(res.Stdout); got != "-1 1\n-1 1\n-1 1\n" {
		t.Fatalf("ptrace in the sandbox: stdout %q, stderr %q: want three EPERM", got, res.Stderr)
	}
	d = refusedOf(t, res, "ptrace")
	if d.Count != 3 || d.Process != "python3" || !strings.Contains(d.Reason, "tracing") {
		t.Errorf("ptrace denial: %+v", d)
	}

	// Nothing refused, nothing reported; clone3's ENOSYS (the C library's
	// fallback to clone) is not a refusal.
	res = runIn(t, p, 0, "sh", "-c", "true | true; python3 -c 'import threading; t = threading.Thread(target=print); t.start(); t.join()'")
	if res.ExitCode != 0 || len(res.Syscalls) != 0 {
		t.Errorf("clean run: exit %d, refused %+v, stderr %q", res.ExitCode, res.Syscalls, res.Stderr)
	}
}

// TestRefusedSyscallsNoNet: an inet socket in a profile without network is
// reported with its family.
func TestRefusedSyscallsNoNet(t *testing.T) {
	_, p := initWorkspace(t, "offline")
	res := runIn(t, p, 0, "python3", "-c", "import socket; socket.socket(socket.AF_INET6, socket.SOCK_STREAM)")
	if res.ExitCode == 0 || !strings.Contains(string(res.Stderr), "PermissionError") {
		t.Fatalf("inet6 socket offline: exit %d, stderr %q", res.ExitCode, res.Stderr)
	}
	if d := refusedOf(t, res, "socket"); d.Detail != "AF_INET6" || !strings.Contains(d.Reason, "network") {
		t.Errorf("socket denial: %+v", d)
	}
}

// TestRefusedSyscallsBounded: a run reports at most MaxSyscallDenials kinds,
// and one killed at its timeout still reports what was refused before.
func TestRefusedSyscallsBounded(t *testing.T) {
	_, p := initWorkspace(t, "workspace-write")
	info, err := arch.GetInfo("")
	if err != nil {
		t.Fatal(err)
	}
	var calls []string
	for _, name := range inside.BlockedCalls() {
		if nr, ok := info.SyscallNames[name]; ok {
			calls = append(calls, fmt.Sprintf("print(libc.syscall(%d, 0, 0, 0, 0, 0, 0), ctypes.get_errno())", nr))
		}
	}
	if len(calls) <= wire.MaxSyscallDenials {
		t.Fatalf("only %d refused calls to try", len(calls))
	}
	script := "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n" + strings.Join(calls, "\n") + "\n"
	res := runIn(t, p, 0, "python3", "-c", script)
	if want := strings.Repeat("-1 1\n", len(calls)); string(res.Stdout) != want {
		t.Errorf("every refused call must fail with EPERM: stdout %q, stderr %q", res.Stdout, res.Stderr)
	}
	if len(res.Syscalls) != wire.MaxSyscallDenials {
		t.Errorf("%d kinds reported, want %d: %+v", len(res.Syscalls), wire.MaxSyscallDenials, res.Syscalls)
	}

	res = runIn(t, p, 2*time.Second, "sh", "-c", "unshare -m true; exec sleep 60")
	if !res.TimedOut {
		t.Fatalf("want a timeout: %+v", res)
	}
	if d := refusedOf(t, res, "unshare"); d.Detail != "CLONE_NEWNS" {
		t.Errorf("unshare denial: %+v", d)
	}
}

// TestSupervisorOutOfReach: the command cannot take the init's listener
// (the init is not dumpable: /proc/1/fd opens nothing) nor install a
// listener of its own, which, newer than the sandbox's filter, would be
// handed the refused calls once the init's listener closes at the run's end
// and could let them through. Filters without a listener it may add.
func TestSupervisorOutOfReach(t *testing.T) {
	_, p := initWorkspace(t, "workspace-write")
	info, err := arch.GetInfo("")
	if err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`import ctypes, os, struct
libc = ctypes.CDLL(None, use_errno=True)
opened = []
for n in os.listdir("/proc/1/fd"):
    try:
        os.close(os.open("/proc/1/fd/" + n, os.O_RDONLY))
        opened.append(n)
    except OSError:
        pass
print("opened", opened)
ins = ctypes.create_string_buffer(struct.pack("HBBI", 0x06, 0, 0, 0x7fff0000))
class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
prog = Fprog(1, ctypes.cast(ins, ctypes.c_void_p))
for name, flags in (("listener", 8), ("plain", 0)):
    ctypes.set_errno(0)
    print(name, libc.syscall(%d, 1, flags, ctypes.byref(prog)), ctypes.get_errno())
`, info.SyscallNames["seccomp"])
	res := runIn(t, p, 0, "python3", "-c", script)
	if got, want := string(res.Stdout), "opened []\nlistener -1 1\nplain 0 0\n"; got != want {
		t.Fatalf("stdout %q, want %q (stderr %q)", got, want, res.Stderr)
	}
}
