//go:build linux

package bench

import "syscall"

// procAttr puts a started daemon in its own process group, killed with benchd.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
