//go:build linux

package sandbox

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"

	"github.com/moatsec/moat/pkg/egress"
	"github.com/moatsec/moat/pkg/sandbox/inside"
	"github.com/moatsec/moat/pkg/wire"
	"golang.org/x/sys/unix"
)

// egressRun is a run's way out: the proxy and the DNS responder listening
// on loopback inside the helper's network namespace, served from sandboxd's
// own namespace, where it dials out. No process of its own: it lives and
// dies with the run (stop).
type egressRun struct {
	proxy  *egress.Proxy
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startEgress opens the run's listeners inside the network namespace of
// the helper pid and serves them. Denials are written to stderr as they
// happen, so the command (and the model reading its output) sees them.
func startEgress(pid int, spec *Spec, stderr io.Writer) (*egressRun, error) {
	p := spec.Profile
	pol, err := egress.NewPolicy(p.Name, p.Net.Mode == wire.NetFull, p.Net.Allow, p.Net.Deny)
	if err != nil {
		return nil, refuse("network allowlist of profile %s: %v", p.Name, err)
	}
	for _, r := range spec.NetRules {
		if err := pol.Add(r.Decision, r.Entry, r.Source); err != nil {
			return nil, refuse("network rules: %v", err)
		}
	}
	ln, pc, err := listenIn(pid)
	if err != nil {
		return nil, err
	}
	e := &egressRun{proxy: egress.New(egress.Config{Policy: pol, Resolver: spec.Net.Resolver, Dialer: spec.Net.Dialer,
		OnConn: spec.Net.OnConn, OnDeny: func(d egress.Denial) { fmt.Fprintln(stderr, d.String()) }, Ask: spec.Net.Ask,
		OnAsk: func(a egress.Ask) {
			fmt.Fprintf(stderr, "moat: network access to %s needs a person's approval (%s): asking (moat approvals); the connection waits\n",
				net.JoinHostPort(a.Host, strconv.Itoa(a.Port)), a.Verdict.Rule)
		}})}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.wg.Add(2)
	go func() { defer e.wg.Done(); e.proxy.Serve(ctx, ln) }()
	go func() { defer e.wg.Done(); e.proxy.ServeDNS(ctx, pc) }()
	return e, nil
}

// stop closes the listeners and every connection, waits for their
// goroutines, and returns the destinations refused during the run. Safe on
// nil.
func (e *egressRun) stop() []egress.Denial {
	if e == nil {
		return nil
	}
	e.cancel()
	e.wg.Wait()
	return e.proxy.Denied()
}

// listenIn creates, inside the network namespace of pid, with loopback up,
// the proxy's TCP listener on 127.0.0.1:ProxyPort and the DNS socket on
// 127.0.0.1:53. A socket belongs to the namespace it was made in, whichever
// thread later uses it: one locked thread enters the namespace, makes them,
// and comes back.
func listenIn(pid int) (net.Listener, net.PacketConn, error) {
	type made struct {
		ln  net.Listener
		pc  net.PacketConn
		err error
	}
	ch := make(chan made, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- made{err: refuse("network namespace: %v", err)}
			return
		}
		defer self.Close()
		target, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			runtime.UnlockOSThread()
			ch <- made{err: refuse("the run's network namespace: %v", err)}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- made{err: refuse("enter the run's network namespace to serve its egress proxy (sandboxd must run as root for a profile with network): %v", err)}
			return
		}
		var m made
		if m.err = inside.LoopbackUp(); m.err == nil {
			m.ln, m.err = net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", ProxyPort))
		}
		if m.err == nil {
			if m.pc, m.err = net.ListenPacket("udp4", "127.0.0.1:53"); m.err != nil {
				m.ln.Close()
			}
		}
		if m.err != nil {
			m.err = refuse("egress listeners in the run's network namespace: %v", m.err)
		}
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			// The thread stays locked and in the run's namespace: Go ends
			// it with this goroutine rather than reuse it.
			if m.err == nil {
				m.ln.Close()
				m.pc.Close()
			}
			ch <- made{err: refuse("return from the run's network namespace: %v", err)}
			return
		}
		runtime.UnlockOSThread()
		ch <- m
	}()
	m := <-ch
	return m.ln, m.pc, m.err
}
