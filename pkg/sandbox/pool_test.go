//go:build linux

package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/test/testbin"
)

// leftovers prints, one "key=value" a line, what a run could carry to the next
// one through its helper, then leaves all of it behind: a file in its /tmp,
// a SysV shared-memory segment, a detached process, an environment variable
// of its own.
const leftovers = `
for n in mnt pid ipc uts net; do echo "ns.$n=$(readlink /proc/self/ns/$n)"; done
echo "cgroup=$(cat /proc/self/cgroup | tr '\n' ' ')"
echo "tmp=$(ls -A /tmp | tr '\n' ' ')"
echo "shm=$(ipcs -m | grep -c '^0x')"
echo "env=$MOAT_POOL_MARK"
echo "sleeps=$(cat /proc/[0-9]*/comm 2>/dev/null | grep -c '^sleep$')"
echo "policy=$(cut -d' ' -f41 /proc/self/stat)"
echo left > /tmp/left-by-run
ipcmk -M 4096 >/dev/null
setsid sleep 1717 </dev/null >/dev/null 2>&1 &
export MOAT_POOL_MARK=set-by-run
`

// TestPoolHelperSingleUse: a pooled helper serves one run and is gone after
// it, and nothing of a run reaches the next one through the pool — not its
// files, environment, cgroup, namespaces, IPC objects or processes — and a
// helper waits at idle priority and runs the command at normal priority.
// A helper waits in the cgroup made for its run, which the run uses and
// which is gone after it (the helper's exit and the group's removal follow
// the answer: Settle waits for them).
func TestPoolHelperSingleUse(t *testing.T) {
	EnablePool(1)
	defer EnablePool(0)
	ws, p := initWorkspace(t, "offline")
	seen := map[string]string{} // a cgroup → the run that had it
	for i := 0; i < 4; i++ {
		pid := waitPooled(t, true)
		if os.Geteuid() == 0 { // only root can wake it again
			if pol := threadPolicies(pid); len(pol) == 0 || strings.Trim(pol, "5") != "" {
				t.Errorf("run %d: the pooled helper's threads have policies %q, want all 5 (SCHED_IDLE)", i, pol)
			}
		}
		ns := map[string]string{}
		for _, n := range []string{"mnt", "pid", "ipc", "uts", "net"} {
			l, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "ns", n))
			if err != nil {
				t.Fatalf("helper %d: %v", pid, err)
			}
			if n == "pid" { // the helper is its namespace's init, not in it
				l, _ = os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "ns", "pid_for_children"))
			}
			ns[n] = l
		}
		// The helper joins its run's group as it starts, at idle priority:
		// on a loaded host that may be a while after it is pooled, and
		// under cgroup v1 it joins one hierarchy after another.
		var waitingIn string
		joins := pooledJoins(t, pid)
		testbin.Eventually(t, time.Minute, "the pooled helper in its run's cgroup", func() error {
			b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cgroup"))
			if err != nil {
				return err
			}
			waitingIn = strings.TrimSpace(strings.ReplaceAll(string(b), "\n", " "))
			if n := strings.Count(waitingIn, "/run-"); n < joins {
				return fmt.Errorf("helper %d in %s: %d of its %d groups joined", pid, waitingIn, n, joins)
			}
			return nil
		})
		env := map[string]string{}
		if i == 0 {
			env = map[string]string{"MOAT_POOL_MARK": "first-run-only"}
		}
		res, err := Run(context.Background(), &Spec{Argv: []string{"sh", "-c", leftovers}, Profile: p, Dir: ws, Env: env})
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if res.ExitCode != 0 {
			t.Fatalf("run %d: exit %d, stderr %q", i, res.ExitCode, res.Stderr)
		}
		// At the answer nothing of the run is left: its init reaped the
		// detached sleep before reporting.
		if pids := sleepers("1717"); len(pids) > 0 {
			t.Errorf("run %d: its detached sleep outlived the answer: %v", i, pids)
		}
		// The helper itself exits, and its group goes, just after.
		Settle()
		got := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(string(res.Stdout)), "\n") {
			k, v, _ := strings.Cut(l, "=")
			got[k] = strings.TrimSpace(v)
		}
		t.Logf("run %d (helper %d): %v", i, pid, got)
		if i > 0 {
			for k, want := range map[string]string{"tmp": "", "shm": "0", "env": "", "sleeps": "0"} {
				if got[k] != want {
					t.Errorf("run %d: %s=%q, want %q: the run before it left it", i, k, got[k], want)
				}
			}
		}
		if got["policy"] != "0" {
			t.Errorf("run %d: the command's scheduling policy is %q, want 0 (SCHED_OTHER)", i, got["policy"])
		}
		// The command ran in the namespaces of the pooled helper, which
		// is gone after the run (below): they were that run's alone.
		// (Their numbers may come again once freed: compare with the
		// helper's, not with other runs'.)
		for n, want := range ns {
			if got["ns."+n] != want {
				t.Errorf("run %d: ns %s %s, want its helper's %s", i, n, got["ns."+n], want)
			}
		}
		if prev, ok := seen[got["cgroup"]]; ok || got["cgroup"] == "" {
			t.Errorf("run %d: cgroup %q is the one run %s had", i, got["cgroup"], prev)
		}
		seen[got["cgroup"]] = strconv.Itoa(i)
		if got["cgroup"] != waitingIn {
			t.Errorf("run %d: the command ran in cgroups %q, its helper waited in %q", i, got["cgroup"], waitingIn)
		}
		for _, dir := range groupDirs(got["cgroup"]) {
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("run %d: its cgroup %s is still there after the run (%v)", i, dir, err)
			}
		}
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); err == nil {
			t.Errorf("run %d: its helper %d is still there after the run", i, pid)
		}
		pool.mu.Lock()
		for _, h := range pool.idle[true] {
			if h.cmd.Process.Pid == pid {
				t.Errorf("run %d: its helper %d is back in the pool", i, pid)
			}
		}
		pool.mu.Unlock()
	}
	if pids := sleepers("1717"); len(pids) > 0 {
		t.Errorf("the runs' detached sleeps outlived them: %v", pids)
	}
}

// TestPoolGroupsRemoved: the cgroups made ahead for the helpers waiting in
// the pool go when the pool is turned off (sandboxd stopping), with the
// helpers; none is left behind.
func TestPoolGroupsRemoved(t *testing.T) {
	EnablePool(2)
	defer EnablePool(0)
	waitPoolFull(t, 2)
	var pids []int
	pool.mu.Lock()
	for _, l := range pool.idle {
		for _, h := range l {
			pids = append(pids, h.cmd.Process.Pid)
		}
	}
	pool.mu.Unlock()
	groups := groupsOf(t, os.Getpid())
	if len(pids) != 4 || len(groups) < 4 {
		t.Fatalf("%d helpers waiting in %d groups, want 4 in 4 at least: %v", len(pids), len(groups), groups)
	}
	EnablePool(0)
	waitGone(t, groups)
	for _, pid := range pids {
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); err == nil {
			t.Errorf("helper %d is still there after the pool was turned off", pid)
		}
	}
}

// TestPoolGroupsSweptAfterKill: a sandboxd killed outright cannot remove
// its pool's groups (its helpers die with it); the next pool turned on
// under the same group does.
func TestPoolGroupsSweptAfterKill(t *testing.T) {
	owner := exec.Command("/proc/self/exe", "-test.run=^$")
	owner.Env = append(os.Environ(), poolOwnerEnv+"=1")
	out, err := owner.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	owner.Stderr = os.Stderr
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- line
	}()
	select {
	case line := <-ready:
		if line != "ready\n" {
			owner.Process.Kill()
			owner.Wait()
			t.Fatalf("the pool's owner said %q, want ready", line)
		}
	case <-time.After(90 * time.Second):
		owner.Process.Kill()
		owner.Wait()
		t.Fatal("the pool's owner was not ready after 90s")
	}
	groups := groupsOf(t, owner.Process.Pid)
	if len(groups) < 2 {
		t.Fatalf("the owner's pool has %d groups, want 2 at least", len(groups))
	}
	owner.Process.Kill()
	owner.Wait()
	defer EnablePool(0)
	deadline := time.Now().Add(60 * time.Second)
	for {
		EnablePool(1)
		if len(groupsOf(t, owner.Process.Pid)) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the killed owner's groups are still there after 60s: %v", groupsOf(t, owner.Process.Pid))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// poolOwnerEnv makes the test binary (TestMain) a sandboxd stand-in: it
// fills a pool of one helper of each kind, says "ready" and waits to be
// killed.
const poolOwnerEnv = "MOAT_TEST_POOL_OWNER"

func ownPool() {
	EnablePool(1)
	for {
		pool.mu.Lock()
		full := len(pool.idle[true]) == 1 && len(pool.idle[false]) == 1
		pool.mu.Unlock()
		if full {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("ready")
	select {}
}

// groupsOf lists the cgroup directories the process pid made for runs.
func groupsOf(t *testing.T, pid int) []string {
	t.Helper()
	ps, err := parents()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range ps {
		entries, _ := os.ReadDir(p)
		for _, e := range entries {
			if owner, ok := groupOwner(e.Name()); ok && owner == pid {
				out = append(out, filepath.Join(p, e.Name()))
			}
		}
	}
	return out
}

// waitGone waits until none of groups is there.
func waitGone(t *testing.T, groups []string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var left []string
		for _, g := range groups {
			if _, err := os.Stat(g); err == nil {
				left = append(left, g)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cgroups left behind after 60s: %v", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitPoolFull waits until the pool holds n helpers of each kind.
func waitPoolFull(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		pool.mu.Lock()
		full := len(pool.idle[true]) == n && len(pool.idle[false]) == n
		pool.mu.Unlock()
		if full {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the pool did not hold %d helpers of each kind after 90s", n)
}

// groupDirs are the directories of the cgroups in a /proc/PID/cgroup's
// lines (joined by spaces) that are runs' groups.
func groupDirs(lines string) []string {
	var out []string
	for _, l := range strings.Fields(lines) {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) != 3 || !strings.Contains(parts[2], "/moat/run-") {
			continue
		}
		ctrl := parts[1]
		if ctrl == "" { // v2
			out = append(out, filepath.Join(cgroupRoot, parts[2]))
			continue
		}
		for _, c := range strings.Split(ctrl, ",") {
			if m := layout().mounts[c]; m != "" {
				out = append(out, filepath.Join(m, parts[2]))
			}
		}
	}
	return out
}

// waitPooled waits until the pool holds a helper of the kind and returns
// its pid: the next run takes it.
func waitPooled(t *testing.T, noNet bool) int {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		pool.mu.Lock()
		var pid int
		if l := pool.idle[noNet]; len(l) > 0 {
			pid = l[0].cmd.Process.Pid
		}
		pool.mu.Unlock()
		if pid != 0 {
			return pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	pool.mu.Lock()
	why := pool.failed
	pool.mu.Unlock()
	t.Fatalf("the pool held no helper after 60s (the latest refill: %v)", why)
	return 0
}

// pooledJoins is how many groups (one a v1 hierarchy, or the v2 one) the
// pooled helper pid joins as it starts.
func pooledJoins(t *testing.T, pid int) int {
	t.Helper()
	pool.mu.Lock()
	defer pool.mu.Unlock()
	for _, l := range pool.idle {
		for _, h := range l {
			if h.cmd.Process.Pid == pid {
				return len(h.cg.joinFiles())
			}
		}
	}
	t.Fatalf("helper %d is not in the pool", pid)
	return 0
}

// threadPolicies is the scheduling policy of each thread of pid, one digit
// each.
func threadPolicies(pid int) string {
	var out string
	stats, _ := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "stat"))
	for _, f := range stats {
		if b, err := os.ReadFile(f); err == nil {
			s := string(b)
			if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) > 38 {
				out += f[38]
			}
		}
	}
	return out
}

// sleepers lists the host's processes running `sleep arg`.
func sleepers(arg string) []string {
	var out []string
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range dirs {
		if b, err := os.ReadFile(f); err == nil && string(b) == "sleep\x00"+arg+"\x00" {
			out = append(out, f)
		}
	}
	return out
}

// TestPoolRefillsNoMore: runs taking helpers at once start refills at once;
// between them they start one helper for each taken, none that the full
// pool then throws away.
func TestPoolRefillsNoMore(t *testing.T) {
	EnablePool(2)
	defer EnablePool(0)
	waitPoolFull(t, 2)
	before := spawned.Load()
	const takes = 12
	done := make(chan error, takes)
	for i := 0; i < takes; i++ {
		go func() {
			h, _, err := take(true)
			if err == nil {
				h.kill()
			}
			done <- err
		}()
	}
	for i := 0; i < takes; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	waitPoolFull(t, 2)
	// Refills still starting would be counted late: wait for them.
	testbin.Eventually(t, time.Minute, "the refills ended", func() error {
		pool.mu.Lock()
		defer pool.mu.Unlock()
		if n := pool.coming[true] + pool.coming[false]; n > 0 {
			return fmt.Errorf("%d helpers still starting", n)
		}
		return nil
	})
	if n := spawned.Load() - before; n != takes {
		t.Errorf("%d helpers started for %d taken, want as many (the rest thrown away)", n, takes)
	}
}
