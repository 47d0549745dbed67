//go:build linux

package sandbox

import (
	"sync"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"github.com/moatsec/moat/pkg/sandbox/inside"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// filters holds the seccomp filter of each kind of run (by noNet): it
// depends on nothing but the kind and the architecture, so sandboxd
// assembles it once, not each helper every run, and the helper links no
// BPF assembler or syscall tables.
var filters = map[bool]func() (*inside.Filter, error){
	false: sync.OnceValues(func() (*inside.Filter, error) { return assembleFilter(false) }),
	true:  sync.OnceValues(func() (*inside.Filter, error) { return assembleFilter(true) }),
}

// seccompFor returns the filter of a run with (noNet) or without a network
// namespace of its own. It is shared: the caller must not change it.
func seccompFor(noNet bool) (*inside.Filter, error) { return filters[noNet]() }

// assembleFilter assembles the program and names every call it hands the
// run's supervisor: the blocked ones and those with argument checks.
func assembleFilter(noNet bool) (*inside.Filter, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return nil, err
	}
	raw, err := seccompProgram(noNet)
	if err != nil {
		return nil, err
	}
	f := &inside.Filter{Program: make([]inside.SockFilter, len(raw)), Names: map[int]string{}, CloneFlagsArg: cloneFlagsArg(info)}
	for i, r := range raw {
		f.Program[i] = inside.SockFilter{Code: r.Code, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	for _, name := range append(inside.BlockedCalls(), "ioctl", "clone", "socket", "socketpair") {
		if nr, ok := info.SyscallNames[name]; ok {
			f.Names[nr] = name
		}
	}
	return f, nil
}

// seccomp_data offsets: the syscall number, the audit arch, the arguments.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
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
	for _, n := range inside.BlockedCalls() {
		if _, ok := info.SyscallNames[n]; ok {
			names = append(names, n)
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
	prog = append(prog, argEquals(nr("ioctl"), 1, []uint32{inside.Tiocsti, inside.Tioclinux}, eperm)...)
	prog = append(prog, argBits(nr("clone"), cloneFlagsArg(info), inside.NSFlags, eperm)...)
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
