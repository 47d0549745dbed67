//go:build !linux

package bench

import "syscall"

// procAttr puts a started daemon in its own process group.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
