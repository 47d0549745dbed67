package client

import (
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/moatsec/moat/pkg/wire"
)

// forward passes each signal from signals on to the run's command
// (wire.HeaderSignal), and cancels the run — which kills it — when the
// command is still there wire.RunSignalGrace after the first: a command
// that takes a signal ends as it would outside moat (130 for SIGINT, or its
// trap's own status), one that ignores it is stopped all the same. Signals
// outside wire.RunSignals are dropped. The returned func stops forwarding
// and waits for it.
func (rc *runControl) forward(signals <-chan os.Signal) func() {
	if signals == nil {
		return func() {}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var grace <-chan time.Time
		first := ""
		for {
			select {
			case <-stop:
				return
			case s := <-signals:
				sig, ok := s.(syscall.Signal)
				name := wire.SignalName(sig)
				if !ok || name == "" {
					continue
				}
				rc.signal(name)
				if first == "" {
					first = name
					t := time.NewTimer(wire.RunSignalGrace)
					defer t.Stop()
					grace = t.C
				}
			case <-grace:
				rc.cancel("the command was still running " + wire.RunSignalGrace.String() + " after " + first)
				grace = nil
			}
		}
	})
	return func() { close(stop); wg.Wait() }
}

// signal sends a signal for the command: now if a heartbeat gave the
// control subject, else with the first heartbeat to come.
func (rc *runControl) signal(name string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.sigs = append(rc.sigs, name)
	rc.send()
}
