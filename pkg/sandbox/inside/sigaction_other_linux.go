//go:build linux && !(amd64 || arm64)

package inside

import "golang.org/x/sys/unix"

// kernelSigaction's layout is known only for amd64 and arm64 (see
// sigaction_linux.go); elsewhere park uses os/signal alone.
type kernelSigaction struct{}

const kernelSigactionKnown = false

func ignoreAction() *kernelSigaction { return nil }

func sigaction(unix.Signal, *kernelSigaction) (kernelSigaction, error) {
	return kernelSigaction{}, unix.ENOSYS
}
