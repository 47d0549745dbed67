//go:build linux

package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/moatsec/moat/test/testbin"
	"github.com/nats-io/nats.go/jetstream"
)

// TestBusdDrain: SIGTERM to busd while a run goes on. busd waits for the
// daemons: sandboxd cancels the run, records its run.exit and answers the
// caller before the bus goes; the record is in the stream when busd comes
// back.
func TestBusdDrain(t *testing.T) {
	e := newEnv(t)
	bus, url := startBus(t, e)
	start(t, e.cmd("profiled"))
	start(t, e.cmd("policyd"))
	sd := start(t, e.cmd("sandboxd"))
	c := dialWait(t, e, url)
	waitService(t, c, "sandboxd", 1)
	c.Close()

	marker := fmt.Sprintf("drain-%d", time.Now().UnixNano())
	r := e.cmd("moat", "run", "--", "sh", "-c", "echo started; sleep 60; echo "+marker)
	r.Dir = e.ws
	p := start(t, r)
	waitOutput(t, p, "started\n")
	syscall.Kill(bus.Cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.Done:
	case <-time.After(30 * time.Second):
		t.Fatalf("moat run got no answer within 30s of busd's SIGTERM\n%s", p.Output())
	}
	if ee, ok := p.Err.(*exec.ExitError); !ok || ee.ExitCode() == 125 || ee.ExitCode() == 0 || !strings.Contains(p.Output(), "cancelled: sandboxd is stopping") {
		t.Errorf("moat run after busd's SIGTERM: %v, want the cancelled run's own status and reason\n%s", p.Err, p.Output())
	}
	select {
	case <-bus.Done:
	case <-time.After(30 * time.Second):
		t.Fatal("busd still runs 30s after SIGTERM")
	}
	if strings.Contains(sd.Output(), "AUDIT GAP") {
		t.Errorf("sandboxd lost a record:\n%s", sd.Output())
	}
	if !strings.Contains(bus.Output(), "busd stopped") || strings.Contains(bus.Output(), "still connected") {
		t.Errorf("busd did not wait for the daemons:\n%s", bus.Output())
	}
	if t.Failed() {
		t.Logf("busd:\n%s", bus.Output())
	}

	_, url = startBus(t, e)
	assertRunExit(t, e, url, marker)
}

// assertRunExit finds the cancelled run.exit of the run whose argv holds
// marker in MOAT_AUDIT.
func assertRunExit(t *testing.T, e *env, url, marker string) {
	t.Helper()
	js, err := jetstream.New(dialAs(t, e, url, home.RoleAdmin).Conn())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, wire.AuditStream)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := st.GetLastMsgForSubject(ctx, wire.AuditSubject("sandboxd", "run.exit"))
	if err != nil {
		t.Fatalf("no run.exit on record: %v", err)
	}
	var ev wire.AuditEvent
	if err := wire.Decode(wire.Msgpack, raw.Data, &ev); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(ev.Argv, " "), marker) || ev.Detail["cancelled"] != true {
		t.Fatalf("the last run.exit is %+v, want the cancelled run of %s", ev, marker)
	}
}

// waitOutput waits until p has printed want.
func waitOutput(t *testing.T, p *proc, want string) {
	t.Helper()
	testbin.Eventually(t, 60*time.Second, fmt.Sprintf("output %q", want), func() error {
		if !strings.Contains(p.Output(), want) {
			return fmt.Errorf("output so far %q", p.Output())
		}
		return nil
	})
}

// TestForemanDaemonExit: under foreman, one daemon's exit stops the stack,
// but not mid-run without a record: the run in flight is cancelled, its
// run.exit recorded and its caller answered before busd goes.
func TestForemanDaemonExit(t *testing.T) {
	foreman := tool(t, "foreman", "apt-get install ruby-foreman")
	e := newEnv(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", testbin.FreePort(t))
	f := exec.Command(foreman, "start", "-m", "bus=1,profiled=1,policyd=1,sandboxd=1,auditd=0", "-f", filepath.Join(repoRoot, "Procfile"), "-d", repoRoot)
	f.Env = append(e.vars, "MOAT_BIN="+binDir, "MOAT_LISTEN="+strings.TrimPrefix(url, "nats://"))
	f.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	fp := start(t, f)
	c := dialWait(t, e, url)
	for _, svc := range []string{"profiled", "policyd", "sandboxd"} {
		waitService(t, c, svc, 1) // a run asked before policyd answers is denied
	}
	c.Close()
	e.setBus(url)

	marker := fmt.Sprintf("foreman-%d", time.Now().UnixNano())
	r := e.cmd("moat", "run", "--", "sh", "-c", "echo started; sleep 60; echo "+marker)
	r.Dir = e.ws
	p := start(t, r)
	waitOutput(t, p, "started\n")
	out, err := exec.Command("pgrep", "-f", filepath.Join(binDir, "profiled")+" --bus").Output()
	pid := 0
	if _, serr := fmt.Sscan(string(out), &pid); err != nil || serr != nil {
		t.Fatalf("find profiled under foreman: %v %q", err, out)
	}
	syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-p.Done:
	case <-time.After(30 * time.Second):
		t.Fatalf("moat run got no answer within 30s of profiled's exit\n%s", p.Output())
	}
	if !strings.Contains(p.Output(), "cancelled: sandboxd is stopping") {
		t.Errorf("moat run after profiled's exit: %v\n%s", p.Err, p.Output())
	}
	select {
	case <-fp.Done:
	case <-time.After(30 * time.Second):
		t.Fatal("foreman still runs 30s after a daemon's exit")
	}
	if o := fp.Output(); strings.Contains(o, "AUDIT GAP") || strings.Contains(o, "SIGKILL") || !strings.Contains(o, "busd stopped") {
		t.Errorf("the stack did not stop cleanly:\n%s", o)
	}
	_, url = startBus(t, e)
	assertRunExit(t, e, url, marker)
}

// TestPolicydStopAnswers: SIGTERM to policyd while a person is asked ends
// the wait at once with a deny that names why, instead of leaving the
// caller to its own deadline.
func TestPolicydStopAnswers(t *testing.T) {
	e := newEnv(t)
	_, url := startBus(t, e)
	start(t, e.cmd("profiled"))
	pd := start(t, e.cmd("policyd", "--approval-timeout", "10m"))
	c := dialWait(t, e, url)
	waitService(t, c, "policyd", 1)
	chk := e.cmd("moat", "check", "--approval", "on-request", "--", "python3", "-c", "print(1)")
	chk.Dir = e.ws
	p := start(t, chk)
	waitOutput(t, p, "moat approve ")
	syscall.Kill(pd.Cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.Done:
	case <-time.After(30 * time.Second):
		t.Fatalf("moat check got no answer within 30s of policyd's SIGTERM\n%s", p.Output())
	}
	if ee, ok := p.Err.(*exec.ExitError); !ok || ee.ExitCode() != 77 || !strings.Contains(p.Output(), "policyd is stopping") {
		t.Fatalf("moat check after policyd's SIGTERM: %v\n%s", p.Err, p.Output())
	}
	select {
	case <-pd.Done:
	case <-time.After(30 * time.Second):
		t.Fatal("policyd still runs 30s after SIGTERM")
	}
}
