//go:build linux

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/moatsec/moat/test/testbin"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"
)

// runStack starts busd, profiled, policyd and sandboxd as processes, with a
// custom profile "big" whose output cap is 16 MiB, and returns the env, the
// bus URL and a client.
func runStack(t *testing.T) (*env, string, *client.Client) {
	t.Helper()
	e := newEnv(t)
	toml := "[profiles.big]\nextends = \"offline\"\n[profiles.big.limits]\noutput = \"16MiB\"\n"
	if err := os.WriteFile(filepath.Join(e.home, "profiles.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	_, url := startBus(t, e)
	start(t, e.cmd("profiled"))
	start(t, e.cmd("policyd", "--approval-timeout", "2s"))
	start(t, e.cmd("sandboxd"))
	c := dialWait(t, e, url)
	waitService(t, c, "sandboxd", 1)
	return e, url, c
}

// moatRun runs `moat run ARGS` in the workspace and returns stdout, stderr
// and the exit status.
func moatRun(t *testing.T, e *env, args ...string) ([]byte, string, int) {
	t.Helper()
	cmd := e.cmd("moat", append([]string{"run"}, args...)...)
	cmd.Dir = e.ws
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), errb.String(), code
}

// TestRunOutputAnySize prints 10.9 MB through every path: `moat run` live,
// `moat run --json` (a chunked result), the Go client with and without a
// live writer. Under a 16 MiB cap every byte arrives, in order; under the
// default 1 MiB cap exactly the first MiB arrives, marked truncated. Issue 9
// and 16 saw 600 KB fail with 413 and exit 125.
func TestRunOutputAnySize(t *testing.T) {
	e, _, c := runStack(t)
	argv := []string{"seq", "1", "1500000"}
	want, err := exec.Command(argv[0], argv[1:]...).Output()
	if err != nil || len(want) < 10<<20 {
		t.Fatalf("seq: %d bytes, %v", len(want), err)
	}

	out, errOut, code := moatRun(t, e, append([]string{"--profile", "big", "--"}, argv...)...)
	if code != 0 || !bytes.Equal(out, want) {
		t.Fatalf("moat run: exit %d, %d bytes of %d (equal prefix: %v)\n%s", code, len(out), len(want), bytes.HasPrefix(want, out), errOut)
	}
	out, errOut, code = moatRun(t, e, append([]string{"--"}, argv...)...)
	if code != 0 || !bytes.Equal(out, want[:1<<20]) || !strings.Contains(errOut, "truncated") {
		t.Fatalf("moat run under the 1 MiB cap: exit %d, %d bytes\n%s", code, len(out), errOut)
	}
	out, errOut, code = moatRun(t, e, append([]string{"--json", "--profile", "big", "--"}, argv...)...)
	var res wire.RunResult
	if err := json.Unmarshal(out, &res); err != nil || code != 0 || !bytes.Equal(res.Stdout, want) || res.StdoutTruncated {
		t.Fatalf("moat run --json: exit %d, %v, %d bytes, truncated %v\n%s", code, err, len(res.Stdout), res.StdoutTruncated, errOut)
	}

	// A plain request (`nats req`, no interim messages) gets one answer, the
	// output in it cut to fit the bus and marked so.
	both := []string{"sh", "-c", "seq 1 1500000; seq 1 1500000 >&2"}
	body, _ := json.Marshal(&wire.RunRequest{Profile: "big", Workspace: e.ws, Argv: both})
	m, err := c.Conn().Request(wire.SubjectRun, body, time.Minute)
	if err != nil {
		t.Fatalf("plain request: %v", err)
	}
	var plain wire.RunResult
	if err := json.Unmarshal(m.Data, &plain); err != nil || !plain.StdoutTruncated || !plain.StderrTruncated ||
		len(plain.Stdout) < 1<<20 || !bytes.HasPrefix(want, plain.Stdout) || !bytes.HasPrefix(want, plain.Stderr) {
		t.Fatalf("plain request: %v, %d+%d bytes, truncated %v %v, error %q", err, len(plain.Stdout), len(plain.Stderr),
			plain.StdoutTruncated, plain.StderrTruncated, m.Header.Get(wire.HeaderError))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	got, err := c.Run(ctx, &wire.RunRequest{Profile: "big", Workspace: e.ws, Argv: argv}, nil)
	if err != nil || !bytes.Equal(got.Stdout, want) {
		t.Fatalf("Go client: %v, %d bytes", err, len(got.Stdout))
	}
	var live bytes.Buffer
	got, err = c.Run(ctx, &wire.RunRequest{Profile: "big", Workspace: e.ws, Argv: argv, Stream: true}, func(stream string, data []byte) {
		if stream == wire.StreamStdout {
			live.Write(data)
		}
	})
	if err != nil || !bytes.Equal(live.Bytes(), want) || got.ExitCode != 0 {
		t.Fatalf("Go client, live: %v, %d bytes", err, live.Len())
	}
}

// sec is a sleep argument no other test process uses: n, then this test
// binary's pid, so processes left by another run are not taken for ours.
func sec(n int) string { return fmt.Sprintf("%d.%d", n, os.Getpid()) }

// pidsOf lists the processes whose argv is exactly argv.
func pidsOf(argv ...string) []int {
	want := strings.Join(argv, "\x00") + "\x00"
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		if b, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline")); err == nil && string(b) == want {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitPids waits until processes with each argv run, or until none do.
func waitPids(t *testing.T, running bool, what string, argvs ...[]string) {
	t.Helper()
	start := time.Now()
	testbin.Eventually(t, 20*time.Second, what, func() error {
		for _, argv := range argvs {
			if n := len(pidsOf(argv...)); (n > 0) != running {
				return fmt.Errorf("%d processes %q", n, argv)
			}
		}
		return nil
	})
	t.Logf("%s: %s", what, time.Since(start).Round(time.Millisecond))
}

// TestRunCancel stops runs every way a caller can — SIGINT and SIGTERM to
// `moat run`, SIGKILL of it (the caller vanishes), a cancelled Go context —
// and checks by pid that the command and its whole tree are gone, and that
// each run.exit is recorded with cancelled: true. Issue 9: after Ctrl-C the
// command ran to its end.
func TestRunCancel(t *testing.T) {
	e, url, c := runStack(t)
	cases := []struct {
		name  string
		sig   syscall.Signal
		argv  []string
		procs [][]string
	}{
		{"SIGINT", syscall.SIGINT, []string{"sleep", sec(3017)}, [][]string{{"sleep", sec(3017)}}},
		{"SIGINT to a tree", syscall.SIGINT, []string{"bash", "-c", "sleep " + sec(3018) + " & sleep " + sec(3019) + ""}, [][]string{{"sleep", sec(3018)}, {"sleep", sec(3019)}}},
		{"SIGTERM", syscall.SIGTERM, []string{"sleep", sec(3020)}, [][]string{{"sleep", sec(3020)}}},
		{"SIGKILL: the caller vanishes", syscall.SIGKILL, []string{"bash", "-c", "sleep " + sec(3021) + " & sleep " + sec(3022) + ""}, [][]string{{"sleep", sec(3021)}, {"sleep", sec(3022)}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := e.cmd("moat", append([]string{"run", "--"}, tc.argv...)...)
			cmd.Dir = e.ws
			var errb bytes.Buffer
			cmd.Stderr = &errb
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitPids(t, true, "the command runs", tc.procs...)
			cmd.Process.Signal(tc.sig)
			waitPids(t, false, "the tree is gone after "+tc.sig.String(), tc.procs...)
			cmd.Wait()
			if tc.sig != syscall.SIGKILL && !strings.Contains(errb.String(), "cancelled") {
				t.Errorf("moat run said nothing of the cancel: %s", errb.String())
			}
		})
	}
	t.Run("Go context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan *wire.RunResult, 1)
		go func() {
			res, err := c.Run(ctx, &wire.RunRequest{Workspace: e.ws, Argv: []string{"sleep", sec(3023)}}, nil)
			if err != nil {
				t.Errorf("run: %v", err)
			}
			done <- res
		}()
		waitPids(t, true, "the command runs", []string{"sleep", sec(3023)})
		cancel()
		waitPids(t, false, "the command is gone after cancel", []string{"sleep", sec(3023)})
		if res := <-done; res == nil || !res.Cancelled {
			t.Fatalf("result %+v, want cancelled", res)
		}
	})

	// Every one of those runs has its exit on record, cancelled.
	exits := auditExits(t, e, url)
	for _, n := range []string{sec(3017), sec(3018), sec(3020), sec(3021), sec(3023)} {
		ev, ok := exits[n]
		if !ok {
			t.Errorf("no run.exit for the run of sleep %s", n)
			continue
		}
		if ev.Detail["cancelled"] != true {
			t.Errorf("run.exit of sleep %s: detail %v, want cancelled", n, ev.Detail)
		}
	}
}

// auditExits reads every run.exit event in MOAT_AUDIT, keyed by the first
// number in its argv.
func auditExits(t *testing.T, e *env, url string) map[string]wire.AuditEvent {
	t.Helper()
	js, _ := jetstream.New(dialAs(t, e, url, home.RoleAdmin).Conn())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, wire.AuditStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]wire.AuditEvent{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil || m.Subject != wire.AuditSubject("sandboxd", "run.exit") {
			continue
		}
		var ev wire.AuditEvent
		dec := msgpack.NewDecoder(bytes.NewReader(m.Data))
		dec.SetCustomStructTag("json")
		if json.Unmarshal(m.Data, &ev) != nil && dec.Decode(&ev) != nil {
			continue
		}
		for _, w := range strings.Fields(strings.Join(ev.Argv, " ")) {
			if _, err := strconv.ParseFloat(w, 64); err == nil {
				out[w] = ev
				break
			}
		}
	}
	return out
}

// TestRunPausedCaller stops `moat run` with SIGSTOP for 20 s. A command that
// ended meanwhile is reported as it ended (issue 16: "killed" for a run that
// exited 0); a command still running when the caller has answered no
// heartbeat for wire.RunCallerSilence is killed, tree and all, and reported
// as cancelled when the caller wakes.
func TestRunPausedCaller(t *testing.T) {
	e, _, _ := runStack(t)
	quick := e.cmd("moat", "run", "--", "sh", "-c", "sleep 1; echo done")
	slow := e.cmd("moat", "run", "--", "sleep", sec(3024))
	var quickOut, quickErr, slowErr bytes.Buffer
	quick.Dir, slow.Dir = e.ws, e.ws
	quick.Stdout, quick.Stderr, slow.Stderr = &quickOut, &quickErr, &slowErr
	for _, c := range []*exec.Cmd{quick, slow} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	}
	waitPids(t, true, "the slow command runs", []string{"sleep", sec(3024)})
	quick.Process.Signal(syscall.SIGSTOP)
	slow.Process.Signal(syscall.SIGSTOP)
	time.Sleep(20 * time.Second)
	quick.Process.Signal(syscall.SIGCONT)
	slow.Process.Signal(syscall.SIGCONT)
	quick.Wait()
	slow.Wait()
	if code := quick.ProcessState.ExitCode(); code != 0 || quickOut.String() != "done\n" || strings.Contains(quickErr.String(), "killed") {
		t.Errorf("quick run after a pause: exit %d, out %q\n%s", code, quickOut.String(), quickErr.String())
	}
	if len(pidsOf("sleep", sec(3024))) != 0 || !strings.Contains(slowErr.String(), "cancelled") {
		t.Errorf("slow run of a silent caller: %d processes left\n%s", len(pidsOf("sleep", sec(3024))), slowErr.String())
	}
}

// TestRunInputErrors sends what issue 9 and 16 saw answered 500, 503 or
// deny: each is a 400 naming the problem, from the CLI and the Go client.
func TestRunInputErrors(t *testing.T) {
	e, _, c := runStack(t)
	if _, errOut, code := moatRun(t, e, "--", ""); code != 2 || !strings.Contains(errOut, "argv[0] is empty") {
		t.Errorf("moat run -- '': exit %d\n%s", code, errOut)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		req  wire.RunRequest
		want string
	}{
		{wire.RunRequest{Argv: []string{""}}, "argv[0] is empty"},
		{wire.RunRequest{Argv: []string{"echo", "a\x00b"}}, "NUL byte"},
		{wire.RunRequest{Argv: []string{"true"}, RequestID: strings.Repeat("r", 64<<10)}, "Moat-Request-Id header is 65536 bytes"},
	} {
		tc.req.Workspace = e.ws
		_, err := c.Run(ctx, &tc.req, nil)
		if wire.CodeOf(err) != wire.CodeBadRequest || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want a 400 containing %q", tc.req.Argv, err, tc.want)
		}
	}
}

// TestRunSlowReader keeps `moat run`'s stdout unread for longer than
// wire.RunCallerSilence while the command goes on: a caller that is alive
// but reads slowly (a paused pager) still answers heartbeats, so its run is
// not taken for abandoned.
func TestRunSlowReader(t *testing.T) {
	e, _, _ := runStack(t)
	cmd := e.cmd("moat", "run", "--", "sh", "-c", "seq 1 100000; sleep 12; echo end")
	cmd.Dir = e.ws
	var errb bytes.Buffer
	cmd.Stderr = &errb
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(wire.RunCallerSilence + 3*time.Second) // nobody reads; moat blocks writing
	out, _ := io.ReadAll(stdout)
	if err := cmd.Wait(); err != nil || !bytes.HasSuffix(out, []byte("100000\nend\n")) {
		t.Fatalf("slow reader: %v, %d bytes, ends %q\n%s", err, len(out), out[max(0, len(out)-20):], errb.String())
	}
}
