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
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/service"
	"github.com/moatsec/moat/pkg/wire"
)

// TestResolveAnsweredAcrossBusRestart: the bus restarts while profiled
// resolves. Its permission to answer the caller's reply subject died with
// the bus; the caller, once reconnected, says where it listens again
// (wire.SubjectResolveResume), so
//   - a resolution still going when the bus is back is answered when done;
//   - one answered while the bus was away is sent again, not resolved again,
//
// instead of "no answer on moat.profile.resolve in time".
func TestResolveAnsweredAcrossBusRestart(t *testing.T) {
	s := bustest.Start(t)
	nc := s.Conn(t, home.RoleProfiled)
	svc, err := service.New(nc, service.Config{Name: "profiled-slow", Version: "0.0.1", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Stop() })
	asked, release := make(chan string, 1), make(chan struct{})
	var handled atomic.Int32
	if err := svc.Resumable(wire.SubjectResolveResume); err != nil {
		t.Fatal(err)
	}
	err = svc.HandleKept("resolve", wire.SubjectResolve, func(ctx context.Context, req *service.Request) (any, error) {
		handled.Add(1)
		asked <- req.RequestID
		<-release
		return &wire.Profile{Name: "slow-" + req.RequestID}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c := s.Client(t, home.RoleClient)
	resolve := func(id string) <-chan error {
		out := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			p, err := c.Resolve(ctx, &wire.ResolveRequest{RequestID: id, Profile: "workspace-write"})
			if err == nil && p.Name != "slow-"+id {
				err = fmt.Errorf("profile %q; want slow-%s", p.Name, id)
			}
			out <- err
		}()
		return out
	}
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	restart := func(between func()) {
		t.Helper()
		before := nc.Stats().Reconnects
		s.Server.Close()
		between()
		srv, err := bus.Start(context.Background(), bus.Config{Home: s.Home, Listen: u.Host, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatalf("start the bus again: %v", err)
		}
		s.Server = srv
		t.Cleanup(srv.Close)
		for nc.Stats().Reconnects == before || !nc.IsConnected() || !c.Conn().IsConnected() {
			time.Sleep(20 * time.Millisecond)
		}
	}
	wait := func(id string, a <-chan error) {
		t.Helper()
		select {
		case err := <-a:
			if err != nil {
				t.Errorf("resolution %s across the bus's restart: %v", id, err)
			}
		case <-time.After(2 * time.Minute):
			t.Fatalf("resolution %s: no answer in 2 min", id)
		}
	}

	// Still resolving when the bus is back: answered when done.
	a := resolve("going")
	<-asked
	restart(func() {})
	release <- struct{}{}
	wait("going", a)

	// Answered while the bus was away: sent again.
	a = resolve("answered")
	<-asked
	restart(func() { release <- struct{}{} })
	wait("answered", a)
	if n := handled.Load(); n != 2 {
		t.Errorf("%d resolutions handled for 2 requests; want each once", n)
	}
}
