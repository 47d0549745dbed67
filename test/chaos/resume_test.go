//go:build linux

package chaos

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/wire"
	"github.com/moatsec/moat/test/testbin"
)

// TestRunAnsweredAcrossBusRestart: busd is SIGKILLed and started again while
// runs are in flight. busd's permission for sandboxd to answer a caller's
// reply subject dies with busd; the caller, once reconnected, says where it
// listens again (wire.SubjectRunResume), so
//   - a run still going when the bus is back is answered in full: its exit
//     and its output;
//   - a run that ended while the bus was away is answered with its exit
//     status (from its audit record), not left to the caller's deadline.
func TestRunAnsweredAcrossBusRestart(t *testing.T) {
	s := newStack(t)
	c := s.upOne()
	type answer struct {
		res *wire.RunResult
		err error
	}
	run := func(id, script string) <-chan answer {
		out := make(chan answer, 1)
		go func() {
			res, err := c.Run(context.Background(), &wire.RunRequest{RequestID: id, Profile: "workspace-write", Workspace: s.ws, Cwd: s.ws,
				Argv: []string{"sh", "-c", "touch " + filepath.Join(s.ws, "started-"+id) + "; " + script}}, nil)
			out <- answer{res, err}
		}()
		return out
	}
	started := func(id string) {
		testbin.Eventually(t, 30*time.Second, "run "+id+" started", func() error {
			_, err := os.Stat(filepath.Join(s.ws, "started-"+id))
			return err
		})
	}
	wait := func(a <-chan answer) answer {
		select {
		case got := <-a:
			return got
		case <-time.After(90 * time.Second):
			t.Fatal("no answer in 90 s")
		}
		return answer{}
	}

	// Still going when the bus is back: answered in full.
	long := wire.NewID()
	a := run(long, "sleep 12; echo out-"+long)
	started(long)
	s.proc("busd").Signal(syscall.SIGKILL, stopWithin)
	s.start("busd")
	got := wait(a)
	if got.err != nil || got.res.ExitCode != 0 || string(got.res.Stdout) != "out-"+long+"\n" {
		t.Errorf("a run going on across busd's restart: %+v, %v; want exit 0 and its output", got.res, got.err)
	}

	// Ended while the bus was away: its exit status, clearly.
	s.ready(60 * time.Second)
	short := wire.NewID()
	a = run(short, "sleep 1; exit 3")
	started(short)
	s.proc("busd").Signal(syscall.SIGKILL, stopWithin)
	time.Sleep(3 * time.Second) // the run ends meanwhile
	s.start("busd")
	got = wait(a)
	t.Logf("a run that ended while busd was away: %+v, %v", got.res, got.err)
	switch {
	case got.err == nil && got.res.ExitCode == 3:
	case got.err != nil && strings.Contains(got.err.Error(), "ended with exit status 3"):
	default:
		t.Errorf("a run that ended while busd was away: %+v, %v; want exit 3, or an error naming exit status 3", got.res, got.err)
	}
}
