package service_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/service"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/moatsec/moat/test/testbin"
)

// TestStopCancelsHandlers: a handler blocked on its context returns when
// the service stops, with ErrStopped as the cause, and Stop waits for it.
func TestStopCancelsHandlers(t *testing.T) {
	started := make(chan struct{})
	var returned atomic.Bool
	var cause atomic.Value
	s, svc := start(t, 0, func(ctx context.Context, r *service.Request) (any, error) {
		close(started)
		<-ctx.Done()
		cause.Store(context.Cause(ctx))
		time.Sleep(50 * time.Millisecond) // a slow return: Stop must still wait
		returned.Store(true)
		return nil, ctx.Err()
	})
	c := s.Client(t, home.RoleClient)
	go c.Call(context.Background(), wire.SubjectResolve, "", "", echo{}, &echo{})
	<-started
	stopped := make(chan error, 1)
	go func() { stopped <- svc.Stop() }()
	if err := within(t, stopped); err != nil {
		t.Fatal(err)
	}
	if !returned.Load() {
		t.Fatal("Stop returned before the handler did")
	}
	if got := cause.Load(); got != service.ErrStopped {
		t.Errorf("cause %v, want ErrStopped", got)
	}
}

// TestShutdownLetsRequestsFinish: Shutdown takes no new requests but lets
// the one in flight finish, its context alive, and its caller gets the answer.
func TestShutdownLetsRequestsFinish(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	ctxErr := make(chan error, 1)
	s, svc := start(t, 0, func(ctx context.Context, r *service.Request) (any, error) {
		close(started)
		<-release
		ctxErr <- ctx.Err()
		return echo{Profile: "finished"}, nil
	})
	c := s.Client(t, home.RoleClient)
	answer := make(chan error, 1)
	var got echo
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		answer <- c.Call(ctx, wire.SubjectResolve, "", "", echo{}, &got)
	}()
	<-started
	stopped := make(chan error, 1)
	go func() { stopped <- svc.Shutdown(context.Background()) }()
	testbin.Eventually(t, 30*time.Second, "Shutdown stops taking requests", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := c.Call(ctx, wire.SubjectResolve, "", "", echo{}, &echo{}); wire.CodeOf(err) != wire.CodeUnavailable {
			return errors.New("a new request is still taken")
		}
		return nil
	})
	close(release)
	if err := <-answer; err != nil || got.Profile != "finished" {
		t.Fatalf("the request in flight: %v, %+v", err, got)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if err := <-ctxErr; err != nil {
		t.Errorf("the handler's context ended while Shutdown let it finish: %v", err)
	}
}

// TestShutdownBound: when Shutdown's context ends, the requests still in
// flight are cancelled and joined.
func TestShutdownBound(t *testing.T) {
	started := make(chan struct{})
	var returned atomic.Bool
	s, svc := start(t, 0, func(ctx context.Context, r *service.Request) (any, error) {
		close(started)
		<-ctx.Done()
		returned.Store(true)
		return nil, ctx.Err()
	})
	go s.Client(t, home.RoleClient).Call(context.Background(), wire.SubjectResolve, "", "", echo{}, &echo{})
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- svc.Shutdown(ctx) }()
	cancel()
	if err := within(t, stopped); err != nil {
		t.Fatal(err)
	}
	if !returned.Load() {
		t.Fatal("Shutdown returned before the handler did")
	}
}

// within is what stopped says, or fails the test when it says nothing for
// a minute (a handler that never saw its context end).
func within(t *testing.T, stopped <-chan error) error {
	t.Helper()
	select {
	case err := <-stopped:
		return err
	case <-time.After(time.Minute):
		t.Fatal("the service did not stop: a handler still waits on its context")
		return nil
	}
}

// TestShutdownServesWhatWasRouted: requests the bus routed to this copy
// before it unsubscribed — still queued in the subscription when Shutdown
// begins — are served, not refused as stopping nor dropped; the rest find
// no responder. None waits for its deadline.
func TestShutdownServesWhatWasRouted(t *testing.T) {
	var first sync.Once
	serving := make(chan struct{})
	s, svc := start(t, 0, func(ctx context.Context, r *service.Request) (any, error) {
		first.Do(func() { close(serving) })
		return echo{Profile: "served"}, nil
	})
	c := s.Client(t, home.RoleClient)
	const n = 400
	errs := make(chan error, n)
	for range n {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var out echo
			err := c.Call(ctx, wire.SubjectResolve, "", "", echo{}, &out)
			if err == nil && out.Profile != "served" {
				err = errors.New("answer " + out.Profile)
			}
			errs <- err
		}()
	}
	<-serving // requests are arriving: some are queued, some not yet sent
	if err := within(t, shutdown(svc)); err != nil {
		t.Fatal(err)
	}
	served, none := 0, 0
	for range n {
		err := <-errs
		switch {
		case err == nil:
			served++
		case strings.Contains(err.Error(), "nothing answers"):
			none++
		default:
			t.Errorf("a request neither served nor unrouted: %v", err)
		}
	}
	t.Logf("%d served, %d found no responder", served, none)
}

func shutdown(svc *service.Service) <-chan error {
	stopped := make(chan error, 1)
	go func() { stopped <- svc.Shutdown(context.Background()) }()
	return stopped
}

// TestShutdownTwice: a second stop finds nothing to drain (a daemon's Stop
// and a test's cleanup may both call it): it neither waits for the drain
// bound nor says the subscriptions did not drain.
func TestShutdownTwice(t *testing.T) {
	s := bustest.Start(t)
	var log testbin.Output
	svc, err := service.New(s.Conn(t, home.RoleProfiled), service.Config{Name: "profiled", Version: "0.0.1",
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Handle("resolve", wire.SubjectResolve, func(ctx context.Context, r *service.Request) (any, error) { return echo{}, nil }); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := within(t, shutdown(svc)); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Contains(log.String(), "did not drain") {
		t.Fatalf("a second Shutdown waited for a drain:\n%s", log.String())
	}
}
