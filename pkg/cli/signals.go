package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/moatsec/moat/pkg/wire"
)

// stopSignals end what moat is doing: a terminal's Ctrl-C, a supervisor's
// SIGTERM, a closed terminal's SIGHUP.
var stopSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}

// signalHub owns moat's handling of stopSignals: it cancels the command's
// context, except while a run passes them on to its command (forward).
type signalHub struct {
	mu     sync.Mutex
	to     *runSignals // the run's, while it forwards
	cancel context.CancelCauseFunc
}

type hubKey struct{}

// SignalContext is the context moat's commands run in: cancelled by SIGINT,
// SIGTERM or SIGHUP, except while `moat run` or `moat sh` passes them on to
// its command instead. stop releases the handler and waits for it.
func SignalContext(parent context.Context) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	h := &signalHub{cancel: cancel}
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, stopSignals...)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case s := <-ch:
				h.mu.Lock()
				if h.to != nil {
					h.to.pass(s)
				} else {
					h.cancel(fmt.Errorf("%v signal received", s))
				}
				h.mu.Unlock()
			}
		}
	})
	return context.WithValue(ctx, hubKey{}, h), func() {
		signal.Stop(ch)
		close(done)
		wg.Wait()
		cancel(nil)
	}
}

// runSignals are the signals a run passes on to its command.
type runSignals struct {
	ch    chan os.Signal // read by client.RunSignaled; nil outside SignalContext
	hub   *signalHub
	mu    sync.Mutex
	first os.Signal
}

// forwardSignals makes the stop signals moat gets, until release, go to the
// run's command (client.RunSignaled) instead of cancelling ctx. Outside
// SignalContext (moat used as a library) it forwards nothing.
func forwardSignals(ctx context.Context) *runSignals {
	h, _ := ctx.Value(hubKey{}).(*signalHub)
	rs := &runSignals{hub: h}
	if h == nil {
		return rs
	}
	rs.ch = make(chan os.Signal, 4)
	h.mu.Lock()
	h.to = rs
	h.mu.Unlock()
	return rs
}

func (rs *runSignals) pass(s os.Signal) {
	rs.mu.Lock()
	if rs.first == nil {
		rs.first = s
	}
	rs.mu.Unlock()
	select {
	case rs.ch <- s:
	default:
	}
}

// release gives the stop signals back to the context.
func (rs *runSignals) release() {
	if rs.hub == nil {
		return
	}
	rs.hub.mu.Lock()
	rs.hub.to = nil
	rs.hub.mu.Unlock()
}

// passed says whether a signal was passed on to the command.
func (rs *runSignals) passed() bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.first != nil
}

// endLikeCommand ends moat by the signal that ended the command when moat
// passed a stop signal on to it: as a shell's command killed by Ctrl-C is,
// so the shell that started moat stops too (its status is 128 + the signal).
func (rs *runSignals) endLikeCommand(res *wire.RunResult) {
	if rs.passed() && res.Signal != "" && res.ExitCode > 128 {
		rs.release()
		dieBy(syscall.Signal(res.ExitCode - 128))
	}
}
