//go:build linux

package sandboxd_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/policy"
	"github.com/moatsec/moat/pkg/policyd"
	"github.com/moatsec/moat/pkg/profile"
	"github.com/moatsec/moat/pkg/profiled"
	"github.com/moatsec/moat/pkg/sandboxd"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/moatsec/moat/test/testbin"
	"github.com/nats-io/nats.go/jetstream"
)

// runStack is the pipeline in process (bus, profiled, policyd, sandboxd
// running real sandboxes) and a workspace.
type runStack struct {
	*bustest.Stack
	sd *sandboxd.Daemon
	ws string
}

func startRunStack(t *testing.T, drain time.Duration) *runStack {
	t.Helper()
	s := bustest.Start(t)
	ws, err := os.MkdirTemp("/var/tmp", "moat-sandboxd-stop-") // not /tmp: a run has its own
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(ws) })
	r, err := profile.NewResolver(profile.Options{MoatHome: s.Home.Dir, ProfilesFile: s.Home.ProfilesFile()})
	if err != nil {
		t.Fatal(err)
	}
	pd, err := profiled.Start(s.Conn(t, home.RoleProfiled), profiled.Config{Resolver: r, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pd.Stop() })
	pol, err := policyd.Start(s.Conn(t, home.RolePolicyd), policyd.Config{Engine: policy.New(policy.Options{}), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pol.Stop() })
	sd, err := sandboxd.Start(s.Conn(t, home.RoleSandboxd), sandboxd.Config{Logger: quiet, Drain: drain})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sd.Stop() })
	return &runStack{Stack: s, sd: sd, ws: ws}
}

type runAnswer struct {
	res *wire.RunResult
	err error
}

// start runs script under workspace-write, as `moat run` does, and returns
// once the script has written the file "started".
func (rs *runStack) start(t *testing.T, c *client.Client, script string) <-chan runAnswer {
	t.Helper()
	done := make(chan runAnswer, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		res, err := c.Run(ctx, &wire.RunRequest{Profile: "workspace-write", Workspace: rs.ws,
			Argv: []string{"sh", "-c", "touch started; " + script}}, nil)
		done <- runAnswer{res, err}
	}()
	testbin.Eventually(t, 2*time.Minute, "the run started", func() error {
		if _, err := os.Stat(filepath.Join(rs.ws, "started")); err != nil {
			return err
		}
		return nil
	})
	return done
}

// stop stops sandboxd and fails the test when Stop does not return.
func (rs *runStack) stop(t *testing.T) {
	t.Helper()
	stopped := make(chan error, 1)
	go func() { stopped <- rs.sd.Stop() }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("stop: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("Stop did not return")
	}
}

// TestStopFinishesRunWithinDrain: a run going on when sandboxd stops
// finishes within the drain: its caller gets its result and its effect is
// there, and Stop returns only after it.
func TestStopFinishesRunWithinDrain(t *testing.T) {
	rs := startRunStack(t, 5*time.Minute)
	c := rs.Client(t, home.RoleClient)
	done := rs.start(t, c, "sleep 1; echo finished > marker")
	rs.stop(t)
	if b, err := os.ReadFile(filepath.Join(rs.ws, "marker")); err != nil || string(b) != "finished\n" {
		t.Fatalf("marker: %q %v: Stop returned before the run finished", b, err)
	}
	select {
	case a := <-done:
		if a.err != nil || a.res.ExitCode != 0 || a.res.Cancelled {
			t.Fatalf("run: %v %+v", a.err, a.res)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the run's caller got no answer")
	}
}

// TestStopCancelsRunPastDrain: a run still going at the end of the drain
// is killed and its caller told why; the rest of its script never runs.
func TestStopCancelsRunPastDrain(t *testing.T) {
	rs := startRunStack(t, 100*time.Millisecond)
	c := rs.Client(t, home.RoleClient)
	done := rs.start(t, c, "sleep 600; touch marker")
	rs.stop(t)
	var a runAnswer
	select {
	case a = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("the cancelled run's caller got no answer")
	}
	if a.err != nil || !a.res.Cancelled || !strings.Contains(a.res.CancelReason, "sandboxd is stopping") {
		t.Fatalf("run: %v %+v, want cancelled because sandboxd is stopping", a.err, a.res)
	}
	if _, err := os.Stat(filepath.Join(rs.ws, "marker")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("marker: %v: the script went on after the cancel", err)
	}
}

// TestDeniedRunRunsNothing: a script policy denies is answered with
// wire.ExitDenied and the deny, and no part of it runs.
func TestDeniedRunRunsNothing(t *testing.T) {
	rs := startRunStack(t, time.Second)
	c := rs.Client(t, home.RoleClient)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := c.Run(ctx, &wire.RunRequest{Profile: "offline", Workspace: rs.ws,
		Argv: []string{"sh", "-c", "touch marker; curl https://example.com"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != wire.ExitDenied || res.Decision == nil || res.Decision.Verdict != wire.VerdictDeny {
		t.Fatalf("result %+v, want exit %d with a deny", res, wire.ExitDenied)
	}
	if _, err := os.Stat(filepath.Join(rs.ws, "marker")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("marker: %v: a denied script ran", err)
	}
}

// TestRunEndOnRecordBeforeAnswer: once a run is answered its end is fixed
// in its claim, so the same request id sent at once is refused with 409
// saying how it ended (and does not run again); the claim is marked done
// by the time Stop returns, and the instance's liveness record says it
// stopped with no claim open.
func TestRunEndOnRecordBeforeAnswer(t *testing.T) {
	rs := startRunStack(t, time.Minute)
	c := rs.Client(t, home.RoleClient)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rr := &wire.RunRequest{RequestID: "req-answered", Profile: "workspace-write", Workspace: rs.ws,
		Argv: []string{"sh", "-c", "echo ran >> marker; exit 3"}}
	res, err := c.Run(ctx, rr, nil)
	if err != nil || res.ExitCode != 3 {
		t.Fatalf("run: %v %+v", err, res)
	}
	_, err = c.Run(ctx, rr, nil)
	if wire.CodeOf(err) != wire.CodeConflict || !strings.Contains(err.Error(), "exit 3") {
		t.Fatalf("the same id again at once: %v, want 409 saying exit 3", err)
	}
	if b, err := os.ReadFile(filepath.Join(rs.ws, "marker")); err != nil || string(b) != "ran\n" {
		t.Fatalf("marker %q %v: want the command run exactly once", b, err)
	}
	rs.stop(t)
	js, err := jetstream.New(rs.Conn(t, home.RoleAdmin))
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, wire.RunsStream)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(rr.RequestID))
	var claim, live struct{ State, Outcome string }
	for subject, v := range map[string]any{wire.SubjectRunClaim + "." + hex.EncodeToString(sum[:16]): &claim,
		wire.SubjectRunLive + "." + rs.sd.ID(): &live} {
		m, err := st.GetLastMsgForSubject(ctx, subject)
		if err != nil {
			t.Fatalf("%s: %v", subject, err)
		}
		if err := json.Unmarshal(m.Data, v); err != nil {
			t.Fatal(err)
		}
	}
	if claim.State != "done" || claim.Outcome != "exit 3" {
		t.Errorf("claim after Stop: %+v, want done, exit 3", claim)
	}
	if live.State != "stopped" {
		t.Errorf("liveness record after Stop: %+v, want stopped (no claim left open)", live)
	}
}
