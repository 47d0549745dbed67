package sandboxd

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/moatsec/moat/pkg/wire"
)

// A run's claim (once.go) is stored while policyd decides, not after: the
// two waits overlap, and an allowed run waits for the longer of them rather
// than for both in turn. The claim's invariant holds as before — the
// decision is recorded only once the claim is stored, so an allow on record
// always has a claim — and nothing is left held that should not be:
//   - a run not allowed releases its claim (nothing ran), in the
//     background, joined by Stop; its answer does not wait for the release;
//   - a run whose decision waits for a person releases its claim as soon as
//     the person is asked, and claims again once allowed: no claim stays
//     running through a person's wait, where a sandboxd lost meanwhile
//     would have a run.failed recorded for a run never allowed.
//
// The claim's outcome is used only for an allowed run: a request id sent
// again while its first run goes on is refused (409) once allowed, as
// before, and a denied one is answered with its deny.
type aheadClaim struct {
	d    *Daemon
	rr   *wire.RunRequest
	prof *wire.Profile

	stored chan struct{} // closed once the claim is stored or refused
	cl     *claim
	err    error

	dropOnce  sync.Once
	isDropped atomic.Bool
	dropped   chan struct{} // closed once a dropped claim is released
}

// claimAhead starts claiming rr's request id for a run under prof.
func (d *Daemon) claimAhead(ctx context.Context, rr *wire.RunRequest, prof *wire.Profile) *aheadClaim {
	a := &aheadClaim{d: d, rr: rr, prof: prof, stored: make(chan struct{}), dropped: make(chan struct{})}
	ctx = context.WithoutCancel(ctx)
	d.marking.Add(1)
	go func() {
		defer d.marking.Done()
		defer close(a.stored)
		a.cl, a.err = d.claimAt(ctx, rr, prof.Name, prof.Cwd, wire.NewID())
	}()
	return a
}

// drop gives the claim up: once stored, it is released, saying why (nothing
// ran under it). Only the first call counts; it does not wait.
func (a *aheadClaim) drop(why string) {
	a.dropOnce.Do(func() {
		a.isDropped.Store(true)
		a.d.marking.Add(1)
		go func() {
			defer a.d.marking.Done()
			defer close(a.dropped)
			<-a.stored
			if a.cl != nil {
				a.cl.release(why)
			}
		}()
	})
}

// take is the claim of an allowed run: the one stored ahead or, when it was
// dropped while a person was asked, a new one once that one is released.
func (a *aheadClaim) take(ctx context.Context) (*claim, error) {
	if !a.isDropped.Load() {
		<-a.stored
		return a.cl, a.err
	}
	<-a.dropped
	return a.d.claimAt(context.WithoutCancel(ctx), a.rr, a.prof.Name, a.prof.Cwd, wire.NewID())
}
