//go:build linux

package inside

import (
	"fmt"
	"slices"
	"unsafe"

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

// Values the argument checks compare with the low 32 bits of an argument:
// the kernel reads ioctl's request, socket's domain and clone's flags as
// 32-bit ints, so high bits set by the caller must not slip past a 64-bit
// comparison.
const (
	Tiocsti   = 0x5412
	Tioclinux = 0x541C
	NSFlags   = unix.CLONE_NEWNS | unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET |
		unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWCGROUP | unix.CLONE_NEWTIME
)

// loadSeccomp installs the filter on every thread (TSYNC) and returns its
// listener: the descriptor on which the kernel hands over each refused
// call (close-on-exec; see notify_linux.go). A configuration without a
// filter, or with one the kernel could not hold, is refused: no run
// starts unfiltered.
func loadSeccomp(f *Filter) (int, error) {
	if f == nil || len(f.Program) == 0 || len(f.Program) > unix.BPF_MAXINSNS || f.CloneFlagsArg < 0 || f.CloneFlagsArg > 5 {
		n := 0
		if f != nil {
			n = len(f.Program)
		}
		return -1, fmt.Errorf("sandboxd's seccomp filter has %d instructions (1 to %d): sandboxd and %s do not match, rebuild both", n, unix.BPF_MAXINSNS, "moat-sandbox-helper")
	}
	filter := make([]unix.SockFilter, len(f.Program))
	for i, r := range f.Program {
		filter[i] = unix.SockFilter{Code: r.Code, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
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
