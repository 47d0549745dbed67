package service_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/service"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// resend publishes the call's request again, marked wire.HeaderResent, as
// pkg/client does when the request may have been lost with the bus.
func (c *call) resend(t *testing.T, subject, body string) {
	t.Helper()
	m := nats.NewMsg(subject)
	m.Reply, m.Data = c.reply, []byte(body)
	m.Header.Set(wire.HeaderRequestID, c.id)
	m.Header.Set(wire.HeaderContentType, wire.ContentJSON)
	m.Header.Set(wire.HeaderResent, "1")
	if err := c.nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	if err := c.nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestResentHandledOnce: a request sent again (wire.HeaderResent) by a
// caller that could not tell whether the bus lost it is handled once:
//   - one answered already gets the kept answer, not a second handling;
//   - one still being handled is answered once, when done;
//   - one never seen is handled;
//   - a request under the same id and reply subject not marked resent (a
//     check sent again with its whole profile after a 404) is handled anew.
func TestResentHandledOnce(t *testing.T) {
	s := bustest.Start(t)
	svc, err := service.New(s.Conn(t, home.RoleProfiled), service.Config{Name: "profiled", Version: "0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Stop() })
	if err := svc.Resumable(wire.SubjectResolveResume); err != nil {
		t.Fatal(err)
	}
	var handled atomic.Int32
	started, release := make(chan struct{}, 1), make(chan struct{})
	err = svc.HandleKept("resolve", wire.SubjectResolve, func(_ context.Context, r *service.Request) (any, error) {
		handled.Add(1)
		var in echo
		if err := r.Decode(&in); err != nil {
			return nil, err
		}
		if in.Profile == "slow" {
			started <- struct{}{}
			<-release
		}
		return echo{Profile: "for-" + in.Profile}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	nc := s.Conn(t, home.RoleClient)

	c := ask(t, nc, wire.SubjectResolve, "req-answered", `{"profile":"a"}`)
	if got := c.answer(t, "the request"); got != "for-a" {
		t.Fatalf("the request: %q; want for-a", got)
	}
	c.resend(t, wire.SubjectResolve, `{"profile":"a"}`)
	if got := c.answer(t, "the request sent again after its answer"); got != "for-a" {
		t.Fatalf("the request sent again after its answer: %q; want the kept for-a", got)
	}
	if n := handled.Load(); n != 1 {
		t.Fatalf("handled %d times; want once", n)
	}

	c = ask(t, nc, wire.SubjectResolve, "req-going", `{"profile":"slow"}`)
	<-started
	c.resend(t, wire.SubjectResolve, `{"profile":"slow"}`)
	// The endpoint takes its requests in order: once the next is answered,
	// the one sent again was taken while the first is still handled.
	c2 := ask(t, nc, wire.SubjectResolve, "req-next", `{"profile":"b"}`)
	if got := c2.answer(t, "the next request"); got != "for-b" {
		t.Fatalf("the next request: %q; want for-b", got)
	}
	close(release)
	if got := c.answer(t, "the request sent again while handled"); got != "for-slow" {
		t.Fatalf("the request sent again while handled: %q; want for-slow", got)
	}
	c.none(t, "the request sent again while handled, a second answer")
	if n := handled.Load(); n != 3 {
		t.Fatalf("handled %d times for 3 requests; want each once", n)
	}

	c = &call{nc: nc, id: "req-lost", reply: nc.NewInbox()}
	if c.sub, err = nc.SubscribeSync(c.reply); err != nil {
		t.Fatal(err)
	}
	c.resend(t, wire.SubjectResolve, `{"profile":"lost"}`)
	if got := c.answer(t, "a request whose first sending was lost"); got != "for-lost" {
		t.Fatalf("a request whose first sending was lost: %q; want for-lost", got)
	}
	c.send(t, wire.SubjectResolve, `{"profile":"whole"}`)
	if got := c.answer(t, "the same id and reply, not resent"); got != "for-whole" {
		t.Fatalf("the same id and reply, not resent: %q; want for-whole", got)
	}
	if n := handled.Load(); n != 5 {
		t.Errorf("%d handled; want 5", n)
	}
}

// TestResentNotBusy: a request sent again to the copy that is handling it
// is dropped there (its answer is coming) even when the copy has no room
// for another request: it is not answered 503 busy, which its caller would
// take for the answer.
func TestResentNotBusy(t *testing.T) {
	s := bustest.Start(t)
	svc, err := service.New(s.Conn(t, home.RoleProfiled), service.Config{Name: "profiled", Version: "0.0.1", MaxInflight: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Stop() })
	if err := svc.Resumable(wire.SubjectResolveResume); err != nil {
		t.Fatal(err)
	}
	started, release := make(chan struct{}, 1), make(chan struct{})
	err = svc.HandleKept("resolve", wire.SubjectResolve, func(_ context.Context, r *service.Request) (any, error) {
		started <- struct{}{}
		<-release
		return echo{Profile: "for-slow"}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	nc := s.Conn(t, home.RoleClient)
	c := ask(t, nc, wire.SubjectResolve, "req-busy", `{"profile":"slow"}`)
	<-started
	c.resend(t, wire.SubjectResolve, `{"profile":"slow"}`)
	// The endpoint takes its requests in order: once the next has its
	// answer (busy: the copy is full), the one sent again was taken while
	// the first is still handled.
	if _, err := ask(t, nc, wire.SubjectResolve, "req-next", `{"profile":"b"}`).sub.NextMsg(30 * time.Second); err != nil {
		t.Fatalf("the next request: %v", err)
	}
	close(release)
	if got := c.answer(t, "the request sent again while handled, the copy full"); got != "for-slow" {
		t.Fatalf("the request sent again while handled, the copy full: first answer %q; want for-slow", got)
	}
	c.none(t, "a second answer")
}
