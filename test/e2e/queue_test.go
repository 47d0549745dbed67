//go:build linux

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/wire"
	"github.com/moatsec/moat/test/testbin"
)

// TestRunQueue: sandboxd with one run slot and room for two waiting. While
// one run holds the slot, a run whose caller's deadline passes in the queue
// is a 408 and never runs; of five runs arriving together, two wait and
// three are refused 503 naming the queue's length; once the slot frees, the
// two that waited run, each exactly once, and none of the refused ever does.
func TestRunQueue(t *testing.T) {
	e := newEnv(t)
	_, url := startBus(t, e)
	start(t, e.cmd("profiled"))
	start(t, e.cmd("policyd"))
	start(t, e.cmd("sandboxd", "--max-runs", "1", "--max-queue", "2"))
	c := dialWait(t, e, url)
	waitService(t, c, "sandboxd", 1)
	ws := func(name string) string { return filepath.Join(e.ws, name) }
	run := func(ctx context.Context, session string, argv ...string) (*wire.RunResult, error) {
		return c.Run(ctx, &wire.RunRequest{Profile: "workspace-write", Workspace: e.ws, SessionID: session, Argv: argv, Approval: wire.ApprovalNever}, nil)
	}

	held := make(chan error, 1)
	go func() {
		_, err := run(context.Background(), "holder", "sh", "-c", "touch started; while [ ! -e release ]; do sleep 0.05; done")
		held <- err
	}()
	testbin.Eventually(t, 60*time.Second, "the first run holds the slot", func() error {
		_, err := os.Stat(ws("started"))
		return err
	})

	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	_, err := run(ctx, "late", "sh", "-c", "echo x >> ran-late")
	cancel()
	if wire.CodeOf(err) != wire.CodeTimeout {
		t.Fatalf("a run whose deadline passed in the queue: %v, want a 408", err)
	}

	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		refused []string
		okIDs   []string
	)
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("r%d", i)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			res, err := run(ctx, fmt.Sprintf("s%d", i%2), "sh", "-c", "echo x >> ran-"+id)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && res.ExitCode == 0:
				okIDs = append(okIDs, id)
			case wire.CodeOf(err) == wire.CodeUnavailable && strings.Contains(err.Error(), "2 runs waiting"):
				refused = append(refused, id)
			default:
				t.Errorf("%s: %+v, %v; want a run or a 503 naming 2 runs waiting", id, res, err)
			}
		}()
	}
	testbin.Eventually(t, 60*time.Second, "three of five refused with the queue full", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(refused) < 3 {
			return fmt.Errorf("%d refused so far", len(refused))
		}
		return nil
	})
	if err := os.WriteFile(ws("release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := <-held; err != nil {
		t.Fatalf("the holding run: %v", err)
	}
	if len(okIDs) != 2 || len(refused) != 3 {
		t.Fatalf("ran %v, refused %v; want two runs and three refusals", okIDs, refused)
	}
	for _, id := range okIDs {
		if b, err := os.ReadFile(ws("ran-" + id)); err != nil || string(b) != "x\n" {
			t.Errorf("queued run %s left %q (%v); want it to have run exactly once", id, b, err)
		}
	}
	for _, id := range append(refused, "late") {
		if _, err := os.Stat(ws("ran-" + id)); !os.IsNotExist(err) {
			t.Errorf("run %s was refused but its marker exists (%v)", id, err)
		}
	}
}
