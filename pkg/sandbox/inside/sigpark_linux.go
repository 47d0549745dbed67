//go:build linux

package inside

import (
	"fmt"
	"os"
	"os/signal"
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
//   - prepare (park): the signals are unblocked on the helper's first
//     thread, registered with the runtime (the round trips, at idle), and
//     then rt_sigaction sets SIG_IGN underneath the runtime's handler,
//     keeping the kernel's record of that handler;
//   - the request (unpark): whatever reached the channel meanwhile is
//     dropped, and the handlers the kernel held are put back as they were.
//
// Invariant: from the SIG_IGN until unpark the kernel discards a forwarded
// signal when it is sent (none is blocked on the thread it judges the
// process by, see unblockOnLeader) and drops any pending one, so nothing
// sent to an idle helper is kept for the next run. The runtime's own view
// (its handler installed, the signal wanted) holds throughout; only the
// kernel's action changes, and it is restored byte for byte.
//
// Not covered: a signal that reaches the runtime in the microseconds
// between registering and parking, at the helper's start, and that the
// runtime has still not passed to the channel when the request comes. A
// marker signal awaited after the park would cover it, but its hand-offs
// at idle priority cost 4–5 % of runs/s when the host is saturated
// (docs/performance.md), for a window only sandboxd, or root, could aim at.
type parked struct {
	sigs    chan os.Signal
	actions []savedAction // nil where the helper uses os/signal alone
}

type savedAction struct {
	sig unix.Signal
	act kernelSigaction
}

// park takes the forwarded signals into a channel and, where it can,
// parks them as above; elsewhere it ignores them through os/signal until
// unpark.
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
	signal.Notify(p.sigs, forwarded...)
	for _, s := range forwarded {
		sig := s.(unix.Signal)
		old, err := sigaction(sig, ignoreAction())
		if err != nil {
			return p, fmt.Errorf("signals: park %v: %v", sig, err)
		}
		p.actions = append(p.actions, savedAction{sig: sig, act: old})
	}
	return p, nil
}

// unblockOnLeader unblocks the forwarded signals on this thread, the
// process's first (init locks the helper's main goroutine to it), on every
// architecture and before anything else of park. The kernel discards a
// signal sent to an ignoring process only if the thread it judges the
// process by, this one, does not block it; and Go keeps blocked on its
// threads what the helper inherited blocked (USR1, USR2 and WINCH may be:
// the runtime unblocks only the signals it must take itself). One blocked
// there while parked would wait, pending, for the handler that unpark puts
// back, and reach the command. Unblocked before anything is registered, one
// pending now is taken at once by the runtime's handler, which drops it
// (USR1, USR2 and WINCH neither kill nor are wanted yet).
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
