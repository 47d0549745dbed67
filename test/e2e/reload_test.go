//go:build linux

package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moatsec/moat/test/testbin"
)

// TestSIGHUPReloads: SIGHUP makes profiled reread its profiles and policyd
// its rules — policyd even with no file changed, which its poll would not
// — and both go on serving.
func TestSIGHUPReloads(t *testing.T) {
	e := newEnv(t)
	_, url := startBus(t, e)
	pf := start(t, e.cmd("profiled"))
	pd := start(t, e.cmd("policyd"))
	c := dialWait(t, e, url)
	waitService(t, c, "profiled", 1)
	waitService(t, c, "policyd", 1)
	for _, tc := range []struct {
		p    *proc
		line string
	}{{pf, "profiles reloaded"}, {pd, `msg="rules loaded"`}} {
		before := strings.Count(tc.p.Output(), tc.line)
		if err := syscall.Kill(tc.p.Cmd.Process.Pid, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		testbin.Eventually(t, 30*time.Second, tc.p.Name+" reloaded on SIGHUP", func() error {
			if n := strings.Count(tc.p.Output(), tc.line); n != before+1 {
				return fmt.Errorf("%d lines %q, want %d:\n%s", n, tc.line, before+1, tc.p.Output())
			}
			return nil
		})
	}
	waitService(t, c, "profiled", 1)
	waitService(t, c, "policyd", 1)
	for _, p := range []*proc{pf, pd} {
		select {
		case <-p.Done:
			t.Fatalf("%s exited on SIGHUP: %v\n%s", p.Name, p.Err, p.Output())
		default:
		}
	}
}
