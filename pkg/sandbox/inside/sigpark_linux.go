//go:build linux

package inside

import (
	"fmt"
	"os"
	"os/signal"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A helper waiting for its run takes none of the signals it forwards: the
// kernel discards them, so one sent then reaches no run's command. Taking
// them at the request through os/signal costs a round trip with the
// runtime's signal thread per signal (~0.5 ms for the seven, on the run's
// path), so where the kernel's sigaction layout is known (kernelSigaction)
// the helper takes them while it waits and parks them instead:
//
//   - prepare: signal.Notify with the runtime (the round trips, at idle);
//     then rt_sigaction sets SIG_IGN underneath the runtime's handler,
//     keeping the kernel's record of that handler; then a SIGPWR marker
//     sent to itself is awaited on the same channel, and everything that
//     came before it is dropped;
//   - the request (unpark): whatever reached the channel since is dropped
//     too (every forwarded signal was ignored until now), and the handlers
//     the kernel held are put back as they were.
//
// Invariant: from the SIG_IGN until unpark the kernel discards a forwarded
// signal when it is sent (none is blocked on the thread it judges the
// process by, see unblockOnLeader) and drops any pending one, so nothing
// sent to an idle helper is kept for the next run. What unpark drops can only be a
// signal the runtime took in the helper's first moments, before its
// handlers were parked. The runtime's own view (its handler installed,
// the signal wanted) holds throughout; only the kernel's action changes,
// and it is restored byte for byte.
type parked struct {
	sigs    chan os.Signal
	actions []savedAction // nil where the helper uses os/signal alone
}

type savedAction struct {
	sig unix.Signal
	act kernelSigaction
}

// markerWait is how long park waits for its SIGPWR marker before it sends
// another, at most markerTries times (each wait may last longer: a pooled
// helper runs at idle priority). A helper whose marker never came back
// fails its run's setup, and sandboxd takes another helper.
const (
	markerWait  = 100 * time.Millisecond
	markerTries = 50
)

// park takes the forwarded signals (and SIGPWR, which supervise swallows)
// into a channel and, where it can, parks them as above; elsewhere it
// ignores them through os/signal until unpark.
func park() (*parked, error) {
	p := &parked{sigs: make(chan os.Signal, 16)}
	if err := unblockOnLeader(); err != nil {
		return p, err
	}
	if !kernelSigactionKnown {
		signal.Ignore(forwarded...)
		// The runtime's signal loop starts now, with a signal moat never
		// sends, so unpark's Notify costs only the sigactions.
		signal.Notify(make(chan os.Signal, 1), unix.SIGPWR)
		return p, nil
	}
	signal.Notify(p.sigs, append(forwarded[:len(forwarded):len(forwarded)], unix.SIGPWR)...)
	for _, s := range forwarded {
		sig := s.(unix.Signal)
		old, err := sigaction(sig, ignoreAction())
		if err != nil {
			return p, fmt.Errorf("signals: park %v: %v", sig, err)
		}
		p.actions = append(p.actions, savedAction{sig: sig, act: old})
	}
	for range markerTries {
		if err := unix.Kill(os.Getpid(), unix.SIGPWR); err != nil {
			return p, fmt.Errorf("signals: marker: %v", err)
		}
		if p.awaitMarker() {
			return p, nil
		}
	}
	return p, fmt.Errorf("signals: the SIGPWR marker sent to itself did not come back after %d tries", markerTries)
}

// unblockOnLeader unblocks the forwarded signals on this thread, the
// process's first (init locks the helper's main goroutine to it), on every
// architecture and before anything else of park. The
// kernel discards a signal sent to an ignoring process only if the thread
// it judges the process by, this one, does not block it; and Go keeps
// blocked on its threads what the helper inherited blocked (USR1, USR2 and
// WINCH may be: the runtime unblocks only the signals it must take itself).
// One blocked there while parked would wait, pending, for the handler that
// unpark puts back, and reach the command. Unblocked before anything is
// registered, one pending now is taken at once by the runtime's handler,
// which drops it (USR1, USR2 and WINCH neither kill nor are wanted yet).
func unblockOnLeader() error {
	if tid, pid := unix.Gettid(), unix.Getpid(); tid != pid {
		return fmt.Errorf("signals: parked from thread %d, not the process's first (%d)", tid, pid)
	}
	var set unix.Sigset_t
	w := uint(unsafe.Sizeof(set.Val[0]) * 8) // 64 or 32 bits a word
	for _, s := range forwarded {
		n := uint(s.(unix.Signal)) - 1
		set.Val[n/w] |= 1 << (n % w)
	}
	if err := unix.PthreadSigmask(unix.SIG_UNBLOCK, &set, nil); err != nil {
		return fmt.Errorf("signals: unblock: %v", err)
	}
	return nil
}

// awaitMarker drops what the channel holds until SIGPWR comes, for up to
// markerWait (a full channel can drop the marker itself).
func (p *parked) awaitMarker() bool {
	t := time.NewTimer(markerWait)
	defer t.Stop()
	for {
		select {
		case s := <-p.sigs:
			if s == unix.SIGPWR {
				return true
			}
		case <-t.C:
			return false
		}
	}
}

// unpark drops what reached the channel while the signals were parked and
// gives the kernel the runtime's handlers back: from here a forwarded
// signal waits in the channel for the command (see supervise).
func (p *parked) unpark() error {
	if !kernelSigactionKnown {
		signal.Notify(p.sigs, forwarded...)
		return nil
	}
	drain(p.sigs)
	for _, a := range p.actions {
		if _, err := sigaction(a.sig, &a.act); err != nil {
			return fmt.Errorf("signals: restore %v: %v", a.sig, err)
		}
	}
	return nil
}

// drain drops what c holds now.
func drain(c chan os.Signal) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}
