//go:build linux

package sandbox

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// A pool's refill puts its helper at SCHED_IDLE as soon as it has started:
// on a busy host the helper's Go runtime comes up only when no run (nor
// anything else) wants the CPU, so topping up the pool never slows the run
// that emptied it. The fork itself stays at sandboxd's priority: no thread
// of sandboxd ever runs idle, so nothing it holds while forking (Go's fork
// lock, a spawn a run waits for) waits on an idle thread. take puts every
// thread of the helper back to SCHED_OTHER before it reads its
// configuration, so neither the sandbox's setup nor the command runs idle.
// Only root may raise a policy back, so without root helpers stay at
// normal priority.

// setPolicy puts every thread of process pid under policy. It lists the
// threads again until a pass finds none it has not seen: a thread cloned
// from one already set starts with the policy.
func setPolicy(pid int, policy uint32) error {
	attr := &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: policy}
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	seen := map[int]bool{}
	for round := 0; round < 16; round++ {
		tasks, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		fresh := false
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil || seen[tid] {
				continue
			}
			seen[tid], fresh = true, true
			if err := unix.SchedSetAttr(tid, attr, 0); err != nil && err != unix.ESRCH {
				return fmt.Errorf("thread %d: %w", tid, err)
			}
		}
		if !fresh {
			return nil
		}
	}
	return fmt.Errorf("its threads kept multiplying")
}

// lower puts a freshly started helper at SCHED_IDLE (as root only: only
// root can wake it again).
func (h *helperProc) lower() {
	if os.Geteuid() == 0 && setPolicy(h.cmd.Process.Pid, unix.SCHED_IDLE) == nil {
		h.idle = true
	}
}

// wake puts every thread of an idle helper back to SCHED_OTHER.
func (h *helperProc) wake() error {
	if !h.idle {
		return nil
	}
	if err := setPolicy(h.cmd.Process.Pid, unix.SCHED_NORMAL); err != nil {
		return fmt.Errorf("wake the sandbox helper: %w", err)
	}
	h.idle = false
	return nil
}
