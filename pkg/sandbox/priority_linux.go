//go:build linux

package sandbox

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

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
// from one already set starts with the policy. A thread whose clone began
// before its parent was set starts without it, and shows in the list only
// once that clone is done, which a parent just put at SCHED_IDLE may take
// long to finish on a busy host. With settle, a quiet pass is trusted only
// when no thread seen waits in clone or clone3; else it looks again settle
// later. (A thread on a CPU is not looked into: /proc says "running" then;
// its clone, going on, is not the one left waiting.)
func setPolicy(pid int, policy uint32, settle time.Duration) error {
	attr := &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: policy}
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	seen := map[int]bool{}
	for round := 0; round < 64; round++ {
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
		switch {
		case fresh:
		case settle <= 0 || !cloning(dir, seen):
			return nil
		default:
			time.Sleep(settle)
		}
	}
	return fmt.Errorf("its threads kept multiplying")
}

// cloning reports whether a thread of tids, under the process's task
// directory dir, waits in clone or clone3, off a CPU. A thread gone or not
// readable counts as not.
func cloning(dir string, tids map[int]bool) bool {
	for tid := range tids {
		b, err := os.ReadFile(dir + "/" + strconv.Itoa(tid) + "/syscall")
		if err != nil {
			continue
		}
		nr, _, _ := strings.Cut(string(b), " ")
		if nr == strconv.Itoa(unix.SYS_CLONE) || nr == strconv.Itoa(unix.SYS_CLONE3) {
			return true
		}
	}
	return false
}

// lowerSettle is how often lower looks again while a thread of the helper
// may be making one: a pool's refill, off every run's path, while the
// helper's runtime starts its first threads. Waking a waiting helper, whose
// threads make none, is on a run's path and looks no further.
const lowerSettle = time.Millisecond

// lower puts a freshly started helper at SCHED_IDLE (as root only: only
// root can wake it again). Whatever it managed, wake puts every thread
// back: a thread lowered and one not are both at the run's priority then.
func (h *helperProc) lower() {
	if os.Geteuid() == 0 {
		h.idle = true
		setPolicy(h.cmd.Process.Pid, unix.SCHED_IDLE, lowerSettle) // what it missed only competes with the runs a little
	}
}

// wake puts every thread of an idle helper back to SCHED_OTHER.
func (h *helperProc) wake() error {
	if !h.idle {
		return nil
	}
	if err := setPolicy(h.cmd.Process.Pid, unix.SCHED_NORMAL, 0); err != nil {
		return fmt.Errorf("wake the sandbox helper: %w", err)
	}
	h.idle = false
	return nil
}
