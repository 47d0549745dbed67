package sandboxd

import (
	"context"
	"errors"
	"time"

	"github.com/moatsec/moat/pkg/sandbox"
)

// DefaultDrain is how long Stop lets runs go on: well within foreman's 5 s
// before SIGKILL and busd's own drain, so their ends are on record.
const DefaultDrain = 2 * time.Second

// errStopping is the cause of a run cancelled because sandboxd stops.
var errStopping = errors.New("sandboxd is stopping (SIGTERM, or busd stopping): the run was cancelled and its end recorded")

// Stop stops taking runs, lets those going on finish for the drain, then
// cancels the rest — each is killed, its run.exit recorded (cancelled) and
// its caller answered — and returns once every run's handler is done, its
// claim marked done, the liveness loop (lost.go) has stopped, and the
// helpers of answered runs have exited, their groups removed.
func (d *Daemon) Stop() error {
	done := make(chan error, 1)
	go func() { done <- d.svc.Shutdown(context.Background()) }() // joined below, on every path
	t := time.NewTimer(d.cfg.Drain)
	defer t.Stop()
	var err error
	select {
	case err = <-done:
	case <-t.C:
		d.log.Warn("runs still going at the end of the drain: cancelling them", "drain", d.cfg.Drain)
		d.doQuit(errStopping)
		err = <-done
	}
	d.doQuit(errStopping)
	d.marking.Wait()
	d.live.stop()
	// The helpers of the last runs exit after their answers: their groups
	// go before sandboxd does.
	sandbox.Settle()
	return err
}

// stopping is ctx, cancelled with errStopping when Stop gives up waiting.
func (d *Daemon) stopping(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(d.quit, func() { cancel(context.Cause(d.quit)) })
	return ctx, func() { stop(); cancel(nil) }
}
