//go:build linux

package sandboxd_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/bus"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/sandboxd"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/moatsec/moat/test/testbin"
	"github.com/nats-io/nats.go/jetstream"
)

// TestRunsFullRefusesRun: MOAT_RUNS is bounded, and when it reaches its
// bound a run whose claim cannot be stored is refused with a 503 that says
// so, and nothing runs — old claims are not dropped to make room (they
// hold which request ids ran, and which runs are open). Room made again,
// the next run runs. The bound is shrunk here to the stream's size.
func TestRunsFullRefusesRun(t *testing.T) {
	if cfg := bus.RunsStreamConfig(bus.DefaultRunsMaxBytes); cfg.MaxBytes <= 0 || cfg.Discard != jetstream.DiscardNew {
		t.Fatalf("MOAT_RUNS: max bytes %d, discard %v; want bounded, refusing new claims when full", cfg.MaxBytes, cfg.Discard)
	}
	rs := startRunStack(t, time.Second)
	c := rs.Client(t, home.RoleClient)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := func(marker string) error {
		_, err := c.Run(ctx, &wire.RunRequest{RequestID: "req-" + marker, Profile: "workspace-write", Workspace: rs.ws,
			Argv: []string{"sh", "-c", "touch " + marker}}, nil)
		return err
	}
	if err := run("first"); err != nil {
		t.Fatal(err)
	}
	// Its claim is marked done after the answer, and shrinks then: the
	// stream is measured once it has.
	testbin.Eventually(t, time.Minute, "the first run's claim done", func() error {
		if claim, _ := rs.runsRecord(t, claimOf("req-first")); claim.State != "done" {
			return fmt.Errorf("claim %+v", claim)
		}
		return nil
	})
	js, err := jetstream.New(rs.Conn(t, home.RoleAdmin))
	if err != nil {
		t.Fatal(err)
	}
	restore := sandboxd.FillStream(t, js, wire.RunsStream)
	err = run("refused")
	if wire.CodeOf(err) != wire.CodeUnavailable || !strings.Contains(err.Error(), "full") || !strings.Contains(err.Error(), "nothing ran") {
		t.Fatalf("a run with %s full: %v, want 503 saying it is full and nothing ran", wire.RunsStream, err)
	}
	if _, err := os.Stat(filepath.Join(rs.ws, "refused")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("marker: %v: a run whose claim was refused ran", err)
	}
	restore()
	if err := run("again"); err != nil {
		t.Fatalf("with room again: %v", err)
	}
	if _, err := os.Stat(filepath.Join(rs.ws, "again")); err != nil {
		t.Fatal(err)
	}
}
