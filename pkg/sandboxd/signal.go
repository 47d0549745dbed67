package sandboxd

import (
	"fmt"
	"os"
	"sync"

	"github.com/moatsec/moat/pkg/wire"
)

// runSignals are the signals a run's caller passes on to its command
// (wire.HeaderSignal), as a terminal or a supervisor would send them to a
// command it runs itself. Before the command starts, a signal cancels the
// run; once it runs, the sandbox's init hands each to the command's process
// group, and the command's own status says how it took it. The caller
// cancels the run if the command is still there wire.RunSignalGrace later.
type runSignals struct {
	mu    sync.Mutex
	ch    chan os.Signal // made when the command starts
	first string         // the first signal passed on
}

// signal handles one signal the caller sent for c's command. A name outside
// wire.RunSignals is dropped; so are signals beyond the few a command can
// have waiting.
func (c *caller) signal(name string) {
	sig, ok := wire.RunSignals[name]
	if !ok {
		return
	}
	s := &c.sig
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.first == "" {
		s.first = name
	}
	if s.ch == nil {
		c.cancel(fmt.Errorf("%w: %s before the command started", errCallerCancelled, name))
		return
	}
	select {
	case s.ch <- sig:
	default:
	}
}

// starting says c's command starts now and returns where the signals its
// caller passes on from here on go (the sandbox's Spec.Signals).
func (c *caller) starting() <-chan os.Signal {
	s := &c.sig
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ch = make(chan os.Signal, 4)
	return s.ch
}

// signaledBy is the first signal c's caller passed on, or "".
func (c *caller) signaledBy() string {
	c.sig.mu.Lock()
	defer c.sig.mu.Unlock()
	return c.sig.first
}
