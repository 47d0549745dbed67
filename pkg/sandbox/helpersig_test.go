//go:build linux

package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/sandbox/inside"
	"github.com/moatsec/moat/test/testbin"
	"golang.org/x/sys/unix"
)

// TestPooledHelperOwnGroupDropsIdleSignals: a pooled helper is in a process
// group of its own, so a signal to sandboxd's group (a terminal's Ctrl-C or
// resize) does not reach it; and a signal it took while it waited for its
// run is dropped, not passed on to the command of whatever run takes it.
func TestPooledHelperOwnGroupDropsIdleSignals(t *testing.T) {
	EnablePool(1)
	defer EnablePool(0)
	_, p := initWorkspace(t, "offline")
	pid := waitPooled(t, true)
	if pg, err := unix.Getpgid(pid); err != nil || pg != pid {
		t.Errorf("pooled helper %d in process group %d (%v), want its own; sandboxd's is %d", pid, pg, err, unix.Getpgrp())
	}
	// Once it reads its configuration (fd 3) it has taken the signals it
	// forwards: one now would reach the command, were it not dropped.
	waitReadingConfig(t, pid)
	group, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The run is served by that helper (its cgroup is the run's): a helper
	// the signal had killed would have been replaced by another.
	res, err := Run(context.Background(), &Spec{Argv: []string{"sh", "-c", "sleep 0.3; cat /proc/self/cgroup; echo done"}, Profile: p})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 || res.Signal != "" || !strings.HasSuffix(string(res.Stdout), "done\n") {
		t.Fatalf("exit %d, signal %q, stdout %q: the command got a signal sent to its helper before the run", res.ExitCode, res.Signal, res.Stdout)
	}
	if got := strings.TrimSuffix(string(res.Stdout), "done\n"); got != string(group) {
		t.Fatalf("the run's cgroups %q, the signalled helper's %q: another helper served the run (the signal killed it)", got, group)
	}
}

// forwardedSignals are the signals a helper passes on to its command, by
// their shell names.
var forwardedSignals = []struct {
	name string
	sig  unix.Signal
}{{"HUP", unix.SIGHUP}, {"INT", unix.SIGINT}, {"QUIT", unix.SIGQUIT}, {"TERM", unix.SIGTERM},
	{"USR1", unix.SIGUSR1}, {"USR2", unix.SIGUSR2}, {"WINCH", unix.SIGWINCH}}

// waitReadingConfig waits until the helper pid blocks reading its
// configuration (fd 3): it has prepared, its forwarded signals are parked.
func waitReadingConfig(t *testing.T, pid int) {
	t.Helper()
	testbin.Eventually(t, time.Minute, "the pooled helper waiting for its configuration", func() error {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "syscall"))
		if err != nil {
			return err
		}
		if !strings.HasPrefix(string(b), strconv.Itoa(unix.SYS_READ)+" 0x"+strconv.FormatInt(inside.ConfigFD, 16)+" ") {
			return errors.New("helper not yet reading its configuration: " + strings.TrimSpace(string(b)))
		}
		return nil
	})
}

// TestPooledHelperDropsIdleSignalBursts: bursts of every forwarded signal,
// sent to idle helpers again and again, reach no later run's command. The
// helper takes these signals while it waits and the kernel discards them
// (see inside's park); sent together, they land on several of the runtime's
// threads at once, the case in which a drop done by reading alone let some
// through.
func TestPooledHelperDropsIdleSignalBursts(t *testing.T) {
	EnablePool(1)
	defer EnablePool(0)
	_, p := initWorkspace(t, "offline")
	var traps strings.Builder
	for _, f := range forwardedSignals {
		fmt.Fprintf(&traps, "trap 'echo got-%s' %s; ", f.name, f.name)
	}
	script := traps.String() + "sleep 0.1; echo done"
	for round := range 20 {
		pid := waitPooled(t, true)
		waitReadingConfig(t, pid)
		for range 3 {
			for _, f := range forwardedSignals {
				if err := unix.Kill(pid, f.sig); err != nil {
					t.Fatal(err)
				}
			}
		}
		res, err := Run(context.Background(), &Spec{Argv: []string{"sh", "-c", script}, Profile: p})
		if err != nil {
			t.Fatal(err)
		}
		if res.ExitCode != 0 || string(res.Stdout) != "done\n" {
			t.Fatalf("round %d: exit %d, signal %q, stdout %q: the command got signals sent to an idle helper", round, res.ExitCode, res.Signal, res.Stdout)
		}
	}
}

// TestPooledHelperForwardsEverySignal: once the command runs, each of the
// seven forwarded signals reaches it (its handlers were parked while the
// helper waited and are back).
func TestPooledHelperForwardsEverySignal(t *testing.T) {
	EnablePool(1)
	defer EnablePool(0)
	_, p := initWorkspace(t, "offline")
	waitReadingConfig(t, waitPooled(t, true))
	var script strings.Builder
	script.WriteString("n=0; ")
	for _, f := range forwardedSignals {
		fmt.Fprintf(&script, "trap 'echo got-%s; n=$((n+1))' %s; ", f.name, f.name)
	}
	script.WriteString("echo ready; while [ $n -lt 7 ]; do sleep 0.05; done; echo done")
	sigs := make(chan os.Signal, len(forwardedSignals))
	ready := &lineWaiter{want: "ready", seen: make(chan struct{})}
	done := make(chan struct{})
	var res *Result
	var err error
	go func() {
		defer close(done)
		res, err = Run(context.Background(), &Spec{Argv: []string{"sh", "-c", script.String()}, Profile: p,
			Stdout: ready, Signals: sigs, Timeout: 15 * time.Second})
	}()
	select {
	case <-ready.seen:
	case <-done:
		t.Fatalf("the command ended before it was ready: %v %+v", err, res)
	}
	for _, f := range forwardedSignals {
		sigs <- f.sig
	}
	<-done
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range forwardedSignals {
		if !strings.Contains(string(res.Stdout), "got-"+f.name+"\n") {
			t.Errorf("SIG%s did not reach the command: exit %d, signal %q, stdout %q", f.name, res.ExitCode, res.Signal, res.Stdout)
		}
	}
}

// TestParkedHelperIgnoresInheritedBlocked: a helper started with USR1,
// USR2 and WINCH blocked (sandboxd started so, by a supervisor) waits with
// every forwarded signal ignored and none blocked on its first thread —
// the thread by which the kernel decides to discard a signal sent to it.
// Blocked there, one would wait pending for the handler of the next run.
// The test runs itself again with those signals blocked, as the helpers'
// parent.
func TestParkedHelperIgnoresInheritedBlocked(t *testing.T) {
	const env = "MOAT_TEST_INHERITED_BLOCKED"
	blocked := []unix.Signal{unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH}
	if os.Getenv(env) != "1" {
		runtime.LockOSThread() // the child inherits this thread's mask
		defer runtime.UnlockOSThread()
		var set unix.Sigset_t
		for _, s := range blocked {
			set.Val[(s-1)/64] |= 1 << ((s - 1) % 64)
		}
		var old unix.Sigset_t
		if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, &old); err != nil {
			t.Fatal(err)
		}
		defer unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
		cmd := exec.Command(os.Args[0], "-test.run=^TestParkedHelperIgnoresInheritedBlocked$", "-test.count=1")
		cmd.Env = append(os.Environ(), env+"=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return
	}
	for _, s := range blocked {
		if !sigMaskHas(t, "self", "SigBlk", s) {
			t.Fatalf("%v is not blocked in the test's second run: nothing to show", s)
		}
	}
	EnablePool(1)
	defer EnablePool(0)
	pid := waitPooled(t, true)
	waitReadingConfig(t, pid)
	for _, f := range forwardedSignals {
		if !sigMaskHas(t, strconv.Itoa(pid), "SigIgn", f.sig) {
			t.Errorf("%v not ignored by the waiting helper", f.sig)
		}
		if sigMaskHas(t, strconv.Itoa(pid), "SigBlk", f.sig) {
			t.Errorf("%v blocked on the waiting helper's first thread: one sent now would wait for the next run", f.sig)
		}
	}
}

// sigMaskHas reads the mask named field (SigBlk, SigIgn) of /proc/PID/status
// and says whether it holds s.
func sigMaskHas(t *testing.T, pid, field string, s unix.Signal) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", pid, "status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return m&(1<<(s-1)) != 0
		}
	}
	t.Fatalf("no %s in /proc/%s/status", field, pid)
	return false
}

// TestHelperRefusesWrongNetwork: a helper started without a network
// namespace of its own refuses a configuration that wants one (and one
// started with its own refuses one that does not): the command does not
// run in a network it was not meant for.
func TestHelperRefusesWrongNetwork(t *testing.T) {
	ws, p := initWorkspace(t, "offline")
	pre, err := prelude()
	if err != nil {
		t.Fatal(err)
	}
	for _, own := range []bool{false, true} {
		h, err := spawnWith(own, false, pre)
		if err != nil {
			t.Fatal(err)
		}
		marker := filepath.Join(ws, "ran-"+strconv.FormatBool(own))
		cfg := &inside.Config{Argv: []string{"/bin/sh", "-c", "touch " + marker}, Dir: ws, Profile: helperProfile(p),
			UID: os.Geteuid(), GID: os.Getegid(), NoNet: !own, TmpBytes: 1 << 20}
		if _, err := h.begin(cfg); err == nil || !strings.Contains(err.Error(), "network namespace") {
			t.Errorf("helper with its own network %t, run wanting its own %t: %v, want refused", own, !own, err)
		}
		h.kill() // and its group removed
		if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("marker %s: %v: the command ran", marker, err)
		}
	}
}
