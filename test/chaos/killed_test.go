//go:build linux

package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/wire"
	"github.com/moatsec/moat/test/testbin"
)

// TestSandboxdKilledMidRun: a run going on when its sandboxd is SIGKILLed
// dies with it (its processes are gone), and its end is on record — a
// run.failed written by the sandboxd that comes back, once the lost one's
// liveness record is old (pkg/sandboxd/lost.go) — so the trail has no run
// open for ever and verify is OK.
func TestSandboxdKilledMidRun(t *testing.T) {
	s := newStack(t)
	c := s.upOne()
	id := wire.NewID()
	marker := filepath.Join(s.ws, "started-"+id)
	done := make(chan error, 1)
	var res *wire.RunResult
	go func() {
		var err error
		res, err = c.Run(context.Background(), &wire.RunRequest{RequestID: id, Profile: "workspace-write", Workspace: s.ws, Cwd: s.ws,
			Argv: []string{"sh", "-c", "touch " + marker + "; sleep 300; true"}}, nil)
		done <- err
	}()
	testbin.Eventually(t, 30*time.Second, "the run started", func() error {
		select {
		case err := <-done:
			t.Fatalf("the run ended before its sandboxd was killed: %v %+v %+v", err, res, res.Decision)
		default:
		}
		_, err := os.Stat(marker)
		return err
	})

	s.proc("sandboxd-0").Signal(syscall.SIGKILL, stopWithin)
	s.start("sandboxd-0")
	s.ready(60 * time.Second)
	select {
	case err := <-done:
		if wire.CodeOf(err) != wire.CodeUnavailable {
			t.Errorf("the caller of a run whose sandboxd was killed: %v, want a 503", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the caller of a run whose sandboxd was killed got no answer in 60 s")
	}
	testbin.Eventually(t, 30*time.Second, "the run's processes gone with its sandboxd", func() error {
		if pids := running(id); len(pids) > 0 {
			return &os.PathError{Op: "still running", Path: strings.Join(pids, " ")}
		}
		return nil
	})

	// The lost sandboxd's liveness record is judged old after LostAfter
	// (20 s) of silence, once the new copy has beaten for as long.
	var kinds, lost []string
	testbin.Eventually(t, 90*time.Second, "the run's end on record", func() error {
		kinds, lost = kinds[:0], lost[:0]
		page, err := c.AuditQuery(context.Background(), &wire.AuditQuery{RequestID: id})
		if err != nil {
			return err
		}
		for _, e := range page.Events {
			kinds = append(kinds, e.Event.Kind+" "+e.Event.Verdict)
			if e.Event.Kind == wire.KindRunExit || e.Event.Kind == wire.KindRunFailed {
				lost = append(lost, fmt.Sprint(e.Event.Detail["error"]))
			}
		}
		if len(lost) == 0 {
			return fmt.Errorf("on record: %v; no %s or %s", kinds, wire.KindRunExit, wire.KindRunFailed)
		}
		return nil
	})
	t.Logf("on record: %v", kinds)
	if len(lost) != 1 || !strings.Contains(lost[0], "was lost while the run was in flight") {
		t.Errorf("the run's ends on record: %q, want one run.failed saying its sandboxd was lost", lost)
	}
	if rep := s.verifyLive(); !rep.OK || rep.OpenRuns != 0 {
		t.Fatalf("moat audit verify: ok %v, open runs %d %v, problem %+v", rep.OK, rep.OpenRuns, rep.OpenRunIDs, rep.Problem)
	}
}

// running lists the processes whose command line holds s.
func running(s string) []string {
	var out []string
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), s) {
			out = append(out, d.Name())
		}
	}
	return out
}
