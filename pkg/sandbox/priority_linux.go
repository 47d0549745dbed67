//go:build linux

package sandbox

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// A pool's refill starts its helper at SCHED_IDLE: on a busy host it runs
// only when no run (nor anything else) wants the CPU, so topping up the
// pool never slows the run that emptied it. The forking thread takes the
// policy for the clone — the namespaces are made at its priority — and the
// helper's threads inherit it; take puts them back to SCHED_OTHER before the
// helper reads its configuration, so neither the helper's setup nor the
// command runs idle. Only root may raise a policy back, so without root
// helpers start at normal priority.

func schedAttr(policy uint32) *unix.SchedAttr {
	return &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: policy}
}

// lowerPriority puts the calling (locked) thread at SCHED_IDLE and returns
// how to put it back; nil when it did not (not root, or refused).
func lowerPriority() (restore func() bool) {
	if os.Geteuid() != 0 {
		return nil
	}
	was, err := unix.SchedGetAttr(0, 0)
	if err != nil || unix.SchedSetAttr(0, schedAttr(unix.SCHED_IDLE), 0) != nil {
		return nil
	}
	return func() bool { return unix.SchedSetAttr(0, was, 0) == nil }
}

// wake puts every thread of an idle helper back to SCHED_OTHER. It lists
// the threads again until a pass finds none it has not seen: a thread
// cloned from one already woken starts awake.
func (h *helperProc) wake() error {
	if !h.idle {
		return nil
	}
	dir := "/proc/" + strconv.Itoa(h.cmd.Process.Pid) + "/task"
	seen := map[int]bool{}
	for round := 0; round < 16; round++ {
		tasks, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("wake the sandbox helper: %w", err)
		}
		fresh := false
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil || seen[tid] {
				continue
			}
			seen[tid], fresh = true, true
			if err := unix.SchedSetAttr(tid, schedAttr(unix.SCHED_NORMAL), 0); err != nil && err != unix.ESRCH {
				return fmt.Errorf("wake the sandbox helper: thread %d: %w", tid, err)
			}
		}
		if !fresh {
			h.idle = false
			return nil
		}
	}
	return fmt.Errorf("wake the sandbox helper: its threads kept multiplying")
}
