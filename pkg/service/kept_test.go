package service_test

import (
	"context"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/service"
	"github.com/moatsec/moat/pkg/wire"
)

// TestKeptNeedsResumable: an endpoint cannot keep answers nobody could ask
// for again (HandleKept before Resumable is refused), and the resume
// subscription ends with the service: none is left on the connection.
func TestKeptNeedsResumable(t *testing.T) {
	s := bustest.Start(t)
	nc := s.Conn(t, home.RoleProfiled)
	before := nc.NumSubscriptions()
	svc, err := service.New(nc, service.Config{Name: "profiled", Version: "0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	h := func(context.Context, *service.Request) (any, error) { return echo{Profile: "ok"}, nil }
	if err := svc.HandleKept("resolve", wire.SubjectResolve, h); err == nil {
		t.Fatal("HandleKept before Resumable: no error")
	}
	if err := svc.Resumable(wire.SubjectResolveResume); err != nil {
		t.Fatal(err)
	}
	if err := svc.HandleKept("resolve", wire.SubjectResolve, h); err != nil {
		t.Fatal(err)
	}
	if err := svc.Stop(); err != nil {
		t.Fatal(err)
	}
	// micro drains its own subscriptions in the background.
	for end := time.Now().Add(30 * time.Second); nc.NumSubscriptions() != before; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%d subscriptions 30 s after Stop; want %d (the resumes' ended too)", nc.NumSubscriptions(), before)
		}
	}
}
