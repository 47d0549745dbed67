package client_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/bus"
	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/service"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// TestResolveSentAgainAcrossBusRestart: a request lost with the bus — not
// its answer — is sent again once the caller's connection is back, with
// the same request id, and answered within the caller's deadline, handled
// once, instead of "no answer in time" or "nothing answers":
//   - lost on its way: sent while busd was down, it went out when the
//     connection came back, before any profiled had (its no-responders
//     status is not taken for "no profiled runs");
//   - sent just after the connection came back (client.RestartGrace),
//     before any profiled had: the same;
//   - lost after delivery: the only profiled that received it died with
//     the bus, and a new one came up.
func TestResolveSentAgainAcrossBusRestart(t *testing.T) {
	for _, tc := range []struct {
		name string
		lose func(t *testing.T, r *restarter, ask func() <-chan error) <-chan error
	}{
		{"sent while the bus was down", func(t *testing.T, r *restarter, ask func() <-chan error) <-chan error {
			r.s.Server.Close()
			for r.c.Conn().IsConnected() {
				time.Sleep(10 * time.Millisecond)
			}
			a := ask()
			for n, _ := r.c.Conn().Buffered(); n <= 0; n, _ = r.c.Conn().Buffered() { // in nats.go's buffer, sent on reconnecting
				time.Sleep(10 * time.Millisecond)
			}
			r.start(t)
			if err := r.c.Conn().Flush(); err != nil { // the bus has had it: nobody to receive it
				t.Fatal(err)
			}
			return a
		}},
		{"asked once the bus was back, before profiled", func(t *testing.T, r *restarter, ask func() <-chan error) <-chan error {
			r.s.Server.Close()
			r.start(t)
			before := r.c.Conn().Stats().OutMsgs
			a := ask()
			for r.c.Conn().Stats().OutMsgs == before {
				time.Sleep(10 * time.Millisecond)
			}
			if err := r.c.Conn().Flush(); err != nil { // the bus has had it: nobody to receive it
				t.Fatal(err)
			}
			return a
		}},
		{"received by a profiled that died with the bus", func(t *testing.T, r *restarter, ask func() <-chan error) <-chan error {
			nc := r.s.Conn(t, home.RoleProfiled)
			got := make(chan struct{}, 1)
			if _, err := nc.QueueSubscribe(wire.SubjectResolve, wire.DefaultQueueGroup, func(*nats.Msg) { got <- struct{}{} }); err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			a := ask()
			<-got
			nc.Close()
			r.s.Server.Close()
			r.start(t)
			return a
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := bustest.Start(t)
			r := &restarter{s: s, c: s.Client(t, home.RoleClient)}
			id := wire.NewID()
			ask := func() <-chan error {
				out := make(chan error, 1)
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
					defer cancel()
					p, err := r.c.Resolve(ctx, &wire.ResolveRequest{RequestID: id, Profile: "workspace-write"})
					if err == nil && p.Name != "for-"+id {
						err = fmt.Errorf("profile %q; want for-%s", p.Name, id)
					}
					out <- err
				}()
				return out
			}
			a := tc.lose(t, r, ask)
			// profiled comes up after the bus.
			var handled atomic.Int32
			svc, err := service.New(s.Conn(t, home.RoleProfiled), service.Config{Name: "profiled", Version: "0.0.1", Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { svc.Stop() })
			if err := svc.Resumable(wire.SubjectResolveResume); err != nil {
				t.Fatal(err)
			}
			err = svc.HandleKept("resolve", wire.SubjectResolve, func(_ context.Context, req *service.Request) (any, error) {
				handled.Add(1)
				return &wire.Profile{Name: "for-" + req.RequestID}, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-a:
				if err != nil {
					t.Fatalf("a resolution lost with the bus: %v; want it sent again and answered", err)
				}
			case <-time.After(2 * time.Minute):
				t.Fatal("a resolution lost with the bus: no answer in 2 min")
			}
			if n := handled.Load(); n != 1 {
				t.Errorf("handled %d times; want once", n)
			}
		})
	}
}

// restarter starts a test bus again on its address.
type restarter struct {
	s *bustest.Stack
	c *client.Client
}

// start starts the bus again on its address (after its Close) and waits
// until the client's connection is back.
func (r *restarter) start(t *testing.T) {
	t.Helper()
	u, err := url.Parse(r.s.URL)
	if err != nil {
		t.Fatal(err)
	}
	before := r.c.Conn().Stats().Reconnects
	srv, err := bus.Start(context.Background(), bus.Config{Home: r.s.Home, Listen: u.Host, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("start the bus again: %v", err)
	}
	r.s.Server = srv
	t.Cleanup(srv.Close)
	for r.c.Conn().Stats().Reconnects == before || !r.c.Conn().IsConnected() {
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCallSentAgainWhileServiceNotBack: a plain call (profile list, audit
// queries) that meets no responder just after the bus came back
// (client.RestartGrace) is sent again until the service is back, within its
// deadline, not failed as "nothing answers": nobody received it.
func TestCallSentAgainWhileServiceNotBack(t *testing.T) {
	s := bustest.Start(t)
	r := &restarter{s: s, c: s.Client(t, home.RoleClient)}
	r.s.Server.Close()
	r.start(t)
	before := r.c.Conn().Stats().OutMsgs
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		var l wire.ProfileList
		err := r.c.Call(ctx, wire.SubjectProfileList, "", "", struct{}{}, &l)
		if err == nil && len(l.Profiles) != 1 {
			err = fmt.Errorf("%d profiles; want the 1 listed", len(l.Profiles))
		}
		done <- err
	}()
	for r.c.Conn().Stats().OutMsgs == before {
		time.Sleep(10 * time.Millisecond)
	}
	if err := r.c.Conn().Flush(); err != nil { // the bus has had it: nobody to receive it
		t.Fatal(err)
	}
	svc, err := service.New(s.Conn(t, home.RoleProfiled), service.Config{Name: "profiled", Version: "0.0.1", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Stop() })
	err = svc.Handle("list", wire.SubjectProfileList, func(context.Context, *service.Request) (any, error) {
		return &wire.ProfileList{Profiles: []wire.ProfileInfo{{Name: "workspace-write"}}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("a call that met no responder after the bus came back: %v; want it sent again and answered", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("no answer in 2 min")
	}
}
