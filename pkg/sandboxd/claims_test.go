package sandboxd

import (
	"context"
	"errors"

	"github.com/moatsec/moat/pkg/wire"
)

// The tests' ways to take and mark claims directly; a run takes its claim
// with claimAt and ends it through end and notRun (sandboxd.go, ends.go).

// claim takes rr's claim under a new attempt, with rr's own cwd.
func (d *Daemon) claim(ctx context.Context, rr *wire.RunRequest, profile string) (*claim, error) {
	return d.claimAttempt(ctx, rr, profile, wire.NewID())
}

// claimAttempt takes rr's claim under attempt: the same attempt again (its
// ack was lost) succeeds, another gets 409.
func (d *Daemon) claimAttempt(ctx context.Context, rr *wire.RunRequest, profile, attempt string) (*claim, error) {
	return d.claimAt(ctx, rr, profile, rr.Cwd, attempt)
}

// done marks the claim done, saying how the run ended.
func (c *claim) done(outcome string) { c.markLogged(claimDone, outcome) }

// release marks the claim released: nothing ran.
func (c *claim) release(why string) { c.markLogged(claimReleased, "not run: "+why) }

// markLogged is mark; one that failed is owed (ends.go), one taken over is
// logged.
func (c *claim) markLogged(state, outcome string) {
	err := c.mark(context.Background(), state, outcome)
	switch {
	case errors.Is(err, errChanged):
		c.d.log.Warn("claim not marked "+state, "request_id", c.rec.RequestID, "err", err)
	case err != nil:
		c.d.live.owe(&owedEnd{cl: c, state: state, outcome: outcome, fixed: true, acked: true, tries: 1})
	}
}
