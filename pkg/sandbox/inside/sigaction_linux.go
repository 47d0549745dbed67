//go:build linux && (amd64 || arm64)

package inside

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// kernelSigaction is struct sigaction as rt_sigaction(2) takes it on amd64
// and arm64: handler, flags, restorer, a 64-bit mask.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

const kernelSigactionKnown = true

// ignoreAction is SIG_IGN.
func ignoreAction() *kernelSigaction { return &kernelSigaction{handler: 1} }

// sigaction sets sig's action to act and returns the one it replaced.
func sigaction(sig unix.Signal, act *kernelSigaction) (kernelSigaction, error) {
	var old kernelSigaction
	_, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(act)), uintptr(unsafe.Pointer(&old)), 8, 0, 0)
	if errno != 0 {
		return old, errno
	}
	return old, nil
}
