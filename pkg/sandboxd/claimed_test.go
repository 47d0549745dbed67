//go:build linux

package sandboxd_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/egress/egresstest"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/moatsec/moat/test/testbin"
	"github.com/nats-io/nats.go/jetstream"
)

// runsRecord is the last record on subject in MOAT_RUNS; ok is false when
// there is none.
func (rs *runStack) runsRecord(t *testing.T, subject string) (rec struct{ State, Outcome string }, ok bool) {
	t.Helper()
	js, err := jetstream.New(rs.Conn(t, home.RoleAdmin))
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(context.Background(), wire.RunsStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(context.Background(), subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return rec, false
	}
	if err != nil {
		t.Fatalf("%s: %v", subject, err)
	}
	if err := json.Unmarshal(m.Data, &rec); err != nil {
		t.Fatal(err)
	}
	return rec, true
}

func claimOf(requestID string) string {
	sum := sha256.Sum256([]byte(requestID))
	return wire.SubjectRunClaim + "." + hex.EncodeToString(sum[:16])
}

// TestDeniedRunHoldsNoClaim: a run is claimed only once allowed, so a run
// denied leaves no claim held — none, or a released one — and the stopped
// instance says it holds none.
func TestDeniedRunHoldsNoClaim(t *testing.T) {
	rs := startRunStack(t, time.Second)
	c := rs.Client(t, home.RoleClient)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rr := &wire.RunRequest{RequestID: "req-denied", Profile: "offline", Workspace: rs.ws,
		Argv: []string{"sh", "-c", "touch marker; curl https://example.com"}}
	res, err := c.Run(ctx, rr, nil)
	if err != nil || res.ExitCode != wire.ExitDenied {
		t.Fatalf("run: %v %+v, want exit %d", err, res, wire.ExitDenied)
	}
	rs.stop(t)
	if claim, ok := rs.runsRecord(t, claimOf(rr.RequestID)); ok && claim.State != "released" {
		t.Errorf("claim of a denied run after Stop: %+v, want released (or none)", claim)
	}
	if live, _ := rs.runsRecord(t, wire.SubjectRunLive+"."+rs.sd.ID()); live.State != "stopped" {
		t.Errorf("liveness record after Stop: %+v, want stopped (no claim left held)", live)
	}
	if _, err := os.Stat(filepath.Join(rs.ws, "marker")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("marker: %v: a denied script ran", err)
	}
}

// TestSameRequestAtOnceRunsOnce: one request id sent several times at once
// (its claims stored while each is decided) runs once; the others are
// refused with 409.
func TestSameRequestAtOnceRunsOnce(t *testing.T) {
	rs := startRunStack(t, time.Second)
	c := rs.Client(t, home.RoleClient)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const copies = 4
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		ran, got int
		errs     []string
	)
	for range copies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := c.Run(ctx, &wire.RunRequest{RequestID: "req-same", Profile: "workspace-write", Workspace: rs.ws,
				Argv: []string{"sh", "-c", "echo ran >> marker"}}, nil)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && res.ExitCode == 0:
				ran++
			case wire.CodeOf(err) == wire.CodeConflict:
				got++
			default:
				errs = append(errs, fmt.Sprintf("%v %+v", err, res))
			}
		}()
	}
	wg.Wait()
	if ran != 1 || got != copies-1 {
		t.Fatalf("%d ran, %d refused with 409, others %q; want 1 and %d", ran, got, errs, copies-1)
	}
	if b, err := os.ReadFile(filepath.Join(rs.ws, "marker")); err != nil || string(b) != "ran\n" {
		t.Fatalf("marker %q %v: want the command run exactly once", b, err)
	}
}

// TestPromptHoldsNoClaimWhileAsked: while a person is asked about a run it
// holds no running claim (a sandboxd lost meanwhile must not have a
// run.failed recorded for a run nobody allowed); once allowed, it is
// claimed, runs once, and its claim ends done.
func TestPromptHoldsNoClaimWhileAsked(t *testing.T) {
	egresstest.Tool(t, "python3")
	rs := startRunStack(t, time.Second)
	c := rs.Client(t, home.RoleClient)
	ap := rs.Client(t, home.RoleApprover)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rr := &wire.RunRequest{RequestID: "req-asked", Profile: "workspace-write", Workspace: rs.ws,
		Argv: []string{"python3", "-c", "open('marker', 'a').write('ran\\n')"}}
	done := make(chan runAnswer, 1)
	go func() {
		res, err := c.Run(ctx, rr, nil)
		done <- runAnswer{res, err}
	}()
	var ask wire.ApprovalAsk
	testbin.Eventually(t, time.Minute, "a person asked", func() error {
		l, err := ap.Approvals(ctx, 200*time.Millisecond)
		if err != nil {
			return err
		}
		for _, q := range l {
			if q.RequestID == rr.RequestID {
				ask = q
				return nil
			}
		}
		return errors.New("no question yet")
	})
	testbin.Eventually(t, time.Minute, "the claim released while the person is asked", func() error {
		if claim, ok := rs.runsRecord(t, claimOf(rr.RequestID)); ok && claim.State != "released" {
			return fmt.Errorf("claim %+v", claim)
		}
		return nil
	})
	if _, err := ap.Answer(ctx, &wire.ApprovalAnswer{ID: ask.ID, Verdict: wire.VerdictAllow, By: "tester"}); err != nil {
		t.Fatal(err)
	}
	a := <-done
	if a.err != nil || a.res.ExitCode != 0 {
		t.Fatalf("run: %v %+v", a.err, a.res)
	}
	if b, err := os.ReadFile(filepath.Join(rs.ws, "marker")); err != nil || string(b) != "ran\n" {
		t.Fatalf("marker %q %v: want the command run exactly once", b, err)
	}
	rs.stop(t)
	if claim, _ := rs.runsRecord(t, claimOf(rr.RequestID)); claim.State != "done" || !strings.HasPrefix(claim.Outcome, "exit 0") {
		t.Errorf("claim after Stop: %+v, want done, exit 0", claim)
	}
}
