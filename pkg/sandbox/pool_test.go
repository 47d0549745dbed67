//go:build linux

package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
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
	t.Fatal("the pool held no helper after 60s")
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
