//go:build linux

package inside

import (
	"fmt"
	"slices"
	"unsafe"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// blocked are the system calls refused in every sandbox, with what each
// group keeps from the command: tracing and reading other processes,
// mounting and namespaces, kernel keyrings, eBPF and perf, io_uring (which
// bypasses seccomp for the calls it carries), userfaultfd, kexec and
// modules, handles that escape path checks, and the knobs of the machine
// itself. The filter hands each refused call to the run's seccomp
// supervisor (notify_linux.go), which records it and answers EPERM.
var blocked = []struct {
	why   string
	names []string
}{
	{"no tracing or reading other processes", []string{"ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp"}},
	{"no mounts, namespaces or chroot", []string{"mount", "umount2", "pivot_root", "unshare", "setns", "chroot",
		"fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr"}},
	{"no eBPF or perf events", []string{"bpf", "perf_event_open"}},
	{"no kernel keyrings", []string{"keyctl", "add_key", "request_key"}},
	{"no io_uring (its calls would bypass the filter)", []string{"io_uring_setup", "io_uring_enter", "io_uring_register"}},
	{"no userfaultfd", []string{"userfaultfd"}},
	{"no kernel modules or kexec", []string{"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module"}},
	{"no file handles (they bypass path checks)", []string{"open_by_handle_at", "name_to_handle_at"}},
	{"no changing the machine (clock, swap, reboot, accounting, quotas)", []string{"swapon", "swapoff", "reboot",
		"settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "acct", "quotactl"}},
	{"no reading kernel internals (kernel log, dcookies)", []string{"lookup_dcookie", "syslog"}},
	{"no raw I/O ports or old kernel interfaces", []string{"iopl", "ioperm", "uselib", "vhangup", "personality"}},
	{"no filesystem-wide monitoring", []string{"fanotify_init"}},
}

// Why the argument checks refuse.
const (
	whyTerminal = "no pushing input into the terminal (TIOCSTI, TIOCLINUX)"
	whyClone    = "no new namespaces"
	whyNoNet    = "no network: the profile's net is none"
)

// refusedWhy says what the sandbox forbids by refusing syscall name.
func refusedWhy(name string) string {
	switch name {
	case "ioctl":
		return whyTerminal
	case "clone":
		return whyClone
	case "socket", "socketpair":
		return whyNoNet
	}
	for _, g := range blocked {
		if slices.Contains(g.names, name) {
			return g.why
		}
	}
	return "refused by the sandbox's seccomp filter"
}

// seccomp_data offsets: the syscall number, the audit arch, the arguments.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

// Values the argument checks compare with the low 32 bits of an argument:
// the kernel reads ioctl's request, socket's domain and clone's flags as
// 32-bit ints, so high bits set by the caller must not slip past a 64-bit
// comparison.
const (
	tiocsti   = 0x5412
	tioclinux = 0x541C
	nsFlags   = unix.CLONE_NEWNS | unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET |
		unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWCGROUP | unix.CLONE_NEWTIME
)

// seccompProgram assembles the filter: the architecture check first (a
// syscall of another ABI — int 0x80 on x86-64 — kills the process), then the
// argument checks, then go-seccomp-bpf's blocklist (which also refuses the
// x32 ABI, with ENOSYS). clone3 gets ENOSYS from the filter itself: the C
// library's cue to use clone, not a refusal to report.
func seccompProgram(noNet bool) ([]unix.SockFilter, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, g := range blocked {
		for _, n := range g.names {
			if _, ok := info.SyscallNames[n]; ok {
				names = append(names, n)
			}
		}
	}
	policy := seccomp.Policy{DefaultAction: seccomp.ActionAllow, Syscalls: []seccomp.SyscallGroup{
		{Names: names, Action: seccomp.ActionUserNotify},
	}}
	lib, err := policy.Assemble()
	if err != nil {
		return nil, err
	}
	// Refused calls go to the supervisor, which answers EPERM (never
	// letting one through); should it be gone, the kernel answers ENOSYS.
	eperm := uint32(seccomp.ActionUserNotify)
	enosys := uint32(seccomp.ActionErrno) | uint32(unix.ENOSYS)
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: offArch, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(info.ID), SkipTrue: 1},
		bpf.RetConstant{Val: uint32(seccomp.ActionKillProcess)},
	}
	nr := func(name string) uint32 { return uint32(info.SyscallNames[name]) }
	prog = append(prog, argEquals(nr("ioctl"), 1, []uint32{tiocsti, tioclinux}, eperm)...)
	prog = append(prog, argBits(nr("clone"), cloneFlagsArg(info), nsFlags, eperm)...)
	// The command may add filters of its own, never one with a listener:
	// among filters that return the same action the newest wins, so a
	// listener of the command's would be handed the calls this filter sends
	// the init's supervisor once the init's listener closes at the run's
	// end, and could let them through. Refused by the filter itself.
	prog = append(prog, argBits(nr("seccomp"), 1, unix.SECCOMP_FILTER_FLAG_NEW_LISTENER, uint32(seccomp.ActionErrno)|uint32(unix.EPERM))...)
	if n, ok := info.SyscallNames["clone3"]; ok {
		// clone3 passes its flags in memory a filter cannot read: ENOSYS
		// makes the C library fall back to clone, which is checked.
		prog = append(prog, argEquals(uint32(n), -1, nil, enosys)...)
	}
	if noNet {
		for _, call := range []string{"socket", "socketpair"} {
			prog = append(prog, argEquals(nr(call), 0, []uint32{unix.AF_INET, unix.AF_INET6, unix.AF_PACKET}, eperm)...)
		}
	}
	raw, err := bpf.Assemble(append(prog, lib...))
	if err != nil {
		return nil, err
	}
	out := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		out[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return out, nil
}

// argEquals returns action when syscall nr's argument arg (low 32 bits)
// equals one of vals; with arg -1, whenever nr is called.
func argEquals(nr uint32, arg int, vals []uint32, action uint32) []bpf.Instruction {
	if arg < 0 {
		return []bpf.Instruction{
			bpf.LoadAbsolute{Off: offNr, Size: 4},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipFalse: 1},
			bpf.RetConstant{Val: action},
		}
	}
	k := len(vals)
	out := []bpf.Instruction{
		bpf.LoadAbsolute{Off: offNr, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipFalse: uint8(k + 3)},
		bpf.LoadAbsolute{Off: uint32(offArgs + 8*arg), Size: 4},
	}
	for j, v := range vals {
		out = append(out, bpf.JumpIf{Cond: bpf.JumpEqual, Val: v, SkipTrue: uint8(k - j)})
	}
	return append(out, bpf.Jump{Skip: 1}, bpf.RetConstant{Val: action})
}

// argBits returns action when any of mask's bits is set in the argument.
func argBits(nr uint32, arg int, mask, action uint32) []bpf.Instruction {
	return []bpf.Instruction{
		bpf.LoadAbsolute{Off: offNr, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipFalse: 4},
		bpf.LoadAbsolute{Off: uint32(offArgs + 8*arg), Size: 4},
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: mask, SkipTrue: 1},
		bpf.Jump{Skip: 1},
		bpf.RetConstant{Val: action},
	}
}

// cloneFlagsArg is where clone takes its flags: first everywhere but s390.
func cloneFlagsArg(info *arch.Info) int {
	if info.Name == "s390x" {
		return 1
	}
	return 0
}

// loadSeccomp installs the filter on every thread (TSYNC) and returns its
// listener: the descriptor on which the kernel hands over each refused
// call (close-on-exec; see notify_linux.go).
func loadSeccomp(filter []unix.SockFilter) (int, error) {
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	flags := unix.SECCOMP_FILTER_FLAG_TSYNC | unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH | unix.SECCOMP_FILTER_FLAG_NEW_LISTENER
	fd, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(flags), uintptr(unsafe.Pointer(&prog)))
	if errno != 0 {
		return -1, fmt.Errorf("load the filter: %v", errno)
	}
	return int(fd), nil
}

// BlockedCalls lists every system call the filter refuses outright (the
// argument checks aside), for tests that try each.
func BlockedCalls() []string {
	var out []string
	for _, g := range blocked {
		out = append(out, g.names...)
	}
	return out
}
