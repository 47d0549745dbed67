//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/profile"
	"github.com/moatsec/moat/pkg/sandbox/inside"
	"github.com/moatsec/moat/pkg/wire"
)

// initWorkspace resolves profile name for a fresh workspace outside /tmp.
func initWorkspace(t testing.TB, name string) (string, *wire.Profile) {
	t.Helper()
	base, err := os.MkdirTemp("/var/tmp", "moat-sandbox-init-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	ws := filepath.Join(base, "ws")
	if err := os.MkdirAll(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := profile.NewResolver(profile.Options{MoatHome: filepath.Join(base, "moat")})
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.Resolve(&wire.ResolveRequest{Profile: name, Workspace: ws})
	if err != nil {
		t.Fatal(err)
	}
	return ws, p
}

// TestInitCommandStatus: the command is not its namespace's PID 1, so its
// own signals kill it and its status is the one it has outside.
func TestInitCommandStatus(t *testing.T) {
	_, p := initWorkspace(t, "offline")
	outside := exec.Command("bash", "-c", "kill -9 $$").Run()
	var ee *exec.ExitError
	if !errors.As(outside, &ee) {
		t.Fatalf("bash outside the sandbox: %v", outside)
	}
	want := 128 + int(ee.Sys().(syscall.WaitStatus).Signal())
	for _, tc := range []struct {
		argv       []string
		code       int
		signal     string
		stdoutWant string
	}{
		{[]string{"bash", "-c", "kill -9 $$"}, want, "SIGKILL", ""},
		{[]string{"bash", "-c", "kill -TERM $$"}, 128 + 15, "SIGTERM", ""},
		{[]string{"sh", "-c", "test $$ != 1 && exit 7"}, 7, "", ""},
	} {
		res, err := Run(context.Background(), &Spec{Argv: tc.argv, Profile: p})
		if err != nil {
			t.Fatalf("%v: %v", tc.argv, err)
		}
		if res.ExitCode != tc.code || res.Signal != tc.signal || (tc.stdoutWant != "" && string(res.Stdout) != tc.stdoutWant) {
			t.Errorf("%v: exit %d signal %q stdout %q, want %d %q %q (stderr %q)", tc.argv, res.ExitCode, res.Signal,
				res.Stdout, tc.code, tc.signal, tc.stdoutWant, res.Stderr)
		}
	}
}

// zombieCheck waits (bounded) until no sleep is left running, then prints
// how many zombies the namespace holds and how many sleeps it saw.
const zombieCheck = `
import os, time
def procs():
    out = []
    for p in os.listdir('/proc'):
        if p.isdigit():
            try:
                st = open('/proc/%s/stat' % p).read()
            except OSError:
                continue
            out.append((st[st.index('(')+1:st.rindex(')')], st[st.rindex(')')+2]))
    return out
seen = 0
for _ in range(400):
    ps = procs()
    seen = max(seen, sum(1 for c, s in ps if c == 'sleep'))
    if not any(c == 'sleep' and s != 'Z' for c, s in ps):
        break
    time.sleep(0.05)
time.sleep(0.2)
print(sum(1 for c, s in procs() if s == 'Z'), seen)
`

// TestInitReapsOrphans: orphans that end while the command runs are reaped
// by the init, even when the command itself never waits for anything.
func TestInitReapsOrphans(t *testing.T) {
	_, p := initWorkspace(t, "offline")
	script := "for i in 1 2 3 4 5; do (sleep 0.5 &); done; exec python3 -c \"$0\""
	res, err := Run(context.Background(), &Spec{Argv: []string{"sh", "-c", script, zombieCheck}, Profile: p})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("exit %d: %s", res.ExitCode, res.Stderr)
	}
	f := strings.Fields(string(res.Stdout))
	if len(f) != 2 || f[0] != "0" || f[1] == "0" {
		t.Fatalf("zombies, sleeps seen = %q, want 0 zombies after some sleeps (stderr %q)", res.Stdout, res.Stderr)
	}
}

// TestInitForwardsSignals: a signal for the run reaches the command, which
// handles it and ends as it chooses; its handler's effect is on disk.
func TestInitForwardsSignals(t *testing.T) {
	ws, p := initWorkspace(t, "workspace-write")
	marker := filepath.Join(ws, "marker")
	sigs := make(chan os.Signal, 1)
	ready := &lineWaiter{want: "ready", seen: make(chan struct{})}
	script := `trap 'echo got-term > marker; exit 3' TERM; echo ready; while :; do sleep 0.05; done`
	done := make(chan struct{})
	var res *Result
	var err error
	go func() {
		defer close(done)
		res, err = Run(context.Background(), &Spec{Argv: []string{"bash", "-c", script}, Profile: p, Stdout: ready, Signals: sigs})
	}()
	select {
	case <-ready.seen:
	case <-done:
		t.Fatalf("the command ended before it was ready: %v %+v", err, res)
	}
	sigs <- syscall.SIGTERM
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 || res.Signal != "" {
		t.Errorf("exit %d signal %q, want 3 from the trap (stderr %q)", res.ExitCode, res.Signal, res.Stderr)
	}
	if b, err := os.ReadFile(marker); err != nil || string(b) != "got-term\n" {
		t.Errorf("marker: %q %v, want the trap's line", b, err)
	}
}

// lineWaiter closes seen once want has been written.
type lineWaiter struct {
	mu   sync.Mutex
	buf  strings.Builder
	want string
	seen chan struct{}
	once sync.Once
}

func (w *lineWaiter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

// TestInitHoldsNothing: the init that lives beside the command has no
// capability on any of its threads, each has no_new_privs and the seccomp
// filter, as the command does, and its memory, environment and root are out
// of the command's reach — spawned or pooled (a pooled helper sets
// no_new_privs before its run, on each thread it has then).
func TestInitHoldsNothing(t *testing.T) {
	script := `readlink /proc/self/ns/net
grep -h '^\(Cap\(Eff\|Prm\)\|NoNewPrivs\|Seccomp\):' /proc/1/task/*/status /proc/self/status | tr -s ' \t' ' ' | sort | uniq
cat /proc/1/environ >/dev/null 2>&1 && echo environ-read
readlink /proc/1/root >/dev/null 2>&1 && echo root-read
exit 0`
	want := "CapEff: 0000000000000000\nCapPrm: 0000000000000000\nNoNewPrivs: 1\nSeccomp: 2"
	for _, pooled := range []bool{false, true} {
		t.Run(map[bool]string{false: "spawned", true: "pooled"}[pooled], func(t *testing.T) {
			_, p := initWorkspace(t, "offline")
			helperNet := ""
			if pooled {
				EnablePool(1)
				defer EnablePool(0)
				pid := waitPooled(t, true)
				var err error
				if helperNet, err = os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid)); err != nil {
					t.Fatal(err)
				}
			}
			res, err := Run(context.Background(), &Spec{Argv: []string{"sh", "-c", script}, Profile: p})
			if err != nil {
				t.Fatal(err)
			}
			ns, got, _ := strings.Cut(strings.TrimSpace(string(res.Stdout)), "\n")
			if pooled && ns != helperNet {
				t.Fatalf("the run's network namespace is %q, not the pooled helper's %q: the run did not take it", ns, helperNet)
			}
			if got != want {
				t.Fatalf("the init's threads and the command have\n%s\n(stderr %q), want only\n%s", got, res.Stderr, want)
			}
		})
	}
}

// TestNothingLeftAtTheAnswer: when Run returns, nothing the command left
// behind runs any more — background loops in its group, in a session of
// their own, or ignoring SIGTERM and SIGHUP — pooled or not: what they
// were writing in the workspace stops growing at the answer, not some time
// after it.
func TestNothingLeftAtTheAnswer(t *testing.T) {
	script := `for f in a b c; do (trap '' TERM HUP; while :; do echo x >> $f; done) & done
setsid sh -c 'while :; do echo y >> d; done' &
sleep 0.2
echo started`
	for _, pooled := range []bool{false, true} {
		t.Run(map[bool]string{false: "spawned", true: "pooled"}[pooled], func(t *testing.T) {
			ws, p := initWorkspace(t, "workspace-write")
			if pooled {
				EnablePool(1)
				defer EnablePool(0)
				waitPooled(t, p.Net.Mode == wire.NetNone)
			}
			res, err := Run(context.Background(), &Spec{Argv: []string{"sh", "-c", script}, Profile: p, Dir: ws})
			if err != nil {
				t.Fatal(err)
			}
			sizes := func() map[string]int64 {
				out := map[string]int64{}
				for _, f := range []string{"a", "b", "c", "d"} {
					if fi, err := os.Stat(filepath.Join(ws, f)); err == nil {
						out[f] = fi.Size()
					}
				}
				return out
			}
			at := sizes()
			if res.ExitCode != 0 || strings.TrimSpace(string(res.Stdout)) != "started" {
				t.Fatalf("exit %d, stdout %q, stderr %q", res.ExitCode, res.Stdout, res.Stderr)
			}
			for _, f := range []string{"a", "b", "c", "d"} {
				if at[f] == 0 {
					t.Fatalf("the background writer of %s never wrote (sizes %v): the test shows nothing", f, at)
				}
			}
			time.Sleep(200 * time.Millisecond)
			if later := sizes(); !maps.Equal(at, later) {
				t.Errorf("what the command left kept writing after the answer: sizes %v at it, %v 200ms later", at, later)
			}
		})
	}
}

// TestInitAloneAtItsReport: the init reports the command's end only once it
// has killed and reaped everything else of the run — at that moment, before
// sandboxd has touched anything, the run's group holds the init alone — and
// has closed its output, so that the output reaches its end without the
// init's exit. (Run also kills the group at the answer, which would hide an
// init that reported too early: this drives the helper as Run does, up to
// the report.)
func TestInitAloneAtItsReport(t *testing.T) {
	_, p := initWorkspace(t, "offline")
	h, err := spawn(true, false)
	if err != nil {
		t.Fatal(err)
	}
	defer h.kill()
	script := `setsid sleep 1719 & (trap '' TERM HUP; sleep 1719) & sleep 1719 </dev/null >/dev/null 2>&1 &
echo started`
	cfg := &inside.Config{Argv: []string{"sh", "-c", script}, Dir: p.Workspace, UID: os.Geteuid(), GID: os.Getegid(),
		Env: []string{"PATH=/usr/bin:/bin"}, NoNet: true, UserNS: os.Geteuid() != 0, TmpBytes: 1 << 20, Profile: helperProfile(p)}
	if _, err := h.begin(cfg); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	waitOutput := h.attach(nil, &stdout, &stderr)
	end := h.outcome()
	if !end.alone || end.code != 0 {
		t.Fatalf("the init reported %+v, want exit 0 and alone", end)
	}
	for _, d := range h.cg.dirs {
		if got := procs(d); len(got) > 1 || len(got) == 1 && got[0] != h.cmd.Process.Pid {
			t.Fatalf("at the init's report, group %s holds %v, want only the init %d", d, got, h.cmd.Process.Pid)
		}
	}
	waitOutput()
	if stdout.String() != "started\n" {
		t.Errorf("stdout %q, stderr %q, want %q", stdout.String(), stderr.String(), "started\n")
	}
}
