package service_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/service"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
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

// call is one request of a client connection, listening on a reply
// subject of its own under the connection's private inbox, as pkg/client's
// calls do.
type call struct {
	nc    *nats.Conn
	id    string
	reply string
	sub   *nats.Subscription
}

// ask sends a request on subject under id from nc, with a fresh reply subject.
func ask(t *testing.T, nc *nats.Conn, subject, id, body string) *call {
	t.Helper()
	c := &call{nc: nc, id: id, reply: nc.NewInbox()}
	var err error
	if c.sub, err = nc.SubscribeSync(c.reply); err != nil {
		t.Fatal(err)
	}
	c.send(t, subject, body)
	return c
}

// send publishes on subject with the call's id and reply subject; body
// empty is a resume.
func (c *call) send(t *testing.T, subject, body string) {
	t.Helper()
	m := nats.NewMsg(subject)
	m.Reply, m.Data = c.reply, []byte(body)
	m.Header.Set(wire.HeaderRequestID, c.id)
	if body != "" {
		m.Header.Set(wire.HeaderContentType, wire.ContentJSON)
	}
	if err := c.nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	if err := c.nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// answer waits for the call's next message and returns its profile.
func (c *call) answer(t *testing.T, what string) string {
	t.Helper()
	m, err := c.sub.NextMsg(30 * time.Second)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	var e echo
	if err := wire.Decode(wire.JSON, m.Data, &e); err != nil {
		t.Fatalf("%s: %v (%s)", what, err, m.Data)
	}
	return e.Profile
}

// none checks that the call has no message: every message a service sent
// it before flush returns is in the subscription by then.
func (c *call) none(t *testing.T, what string) {
	t.Helper()
	if err := c.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if m, err := c.sub.NextMsg(0); err == nil {
		t.Fatalf("%s: got %q; want nothing", what, m.Data)
	}
}

// kept starts a resumable service whose endpoint answers "for-" and the
// request's profile, keeping its answers.
func keptService(t *testing.T, s *bustest.Stack) *service.Service {
	t.Helper()
	svc, err := service.New(s.Conn(t, home.RoleProfiled), service.Config{Name: "profiled", Version: "0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Stop() })
	if err := svc.Resumable(wire.SubjectResolveResume); err != nil {
		t.Fatal(err)
	}
	err = svc.HandleKept("resolve", wire.SubjectResolve, func(_ context.Context, r *service.Request) (any, error) {
		var in echo
		if err := r.Decode(&in); err != nil {
			return nil, err
		}
		return echo{Profile: "for-" + in.Profile}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// TestKeptAnswerIsItsCallers: a kept answer belongs to the caller that
// asked, not to whoever knows its request id. Another connection holding
// the same key (its own private inbox) that learned the id
//   - resuming with it gets nothing;
//   - asking with it gets its own answer, and the first caller's resume
//     still brings back the first caller's answer, not the second's.
func TestKeptAnswerIsItsCallers(t *testing.T) {
	s := bustest.Start(t)
	keptService(t, s)
	a, b := s.Conn(t, home.RoleClient), s.Conn(t, home.RoleClient)
	const id = "req-kept-1"

	ca := ask(t, a, wire.SubjectResolve, id, `{"profile":"a"}`)
	if got := ca.answer(t, "a's request"); got != "for-a" {
		t.Fatalf("a's request: %q; want for-a", got)
	}
	// b resumes a's request id: nothing for b. a's own resume, sent after
	// it, is answered; had b been answered, that answer went out first.
	cb := ask(t, b, wire.SubjectResolveResume, id, "")
	ca.send(t, wire.SubjectResolveResume, "")
	if got := ca.answer(t, "a's resume"); got != "for-a" {
		t.Fatalf("a's resume: %q; want for-a", got)
	}
	cb.none(t, "b resuming a's request id")

	// b asks under a's request id: its own answer, and a's is still a's.
	cb = ask(t, b, wire.SubjectResolve, id, `{"profile":"b"}`)
	if got := cb.answer(t, "b's request under a's id"); got != "for-b" {
		t.Fatalf("b's request under a's id: %q; want for-b", got)
	}
	ca.send(t, wire.SubjectResolveResume, "")
	if got := ca.answer(t, "a's resume after b reused its id"); got != "for-a" {
		t.Fatalf("a's resume after b reused its id: %q; want for-a", got)
	}
	cb.send(t, wire.SubjectResolveResume, "")
	if got := cb.answer(t, "b's resume"); got != "for-b" {
		t.Fatalf("b's resume: %q; want for-b", got)
	}
}

// TestKeptBeforeSent: a kept answer can be resumed as soon as its caller
// could have seen it: a resume sent the moment the answer arrives gets it
// again. (Kept after sending, a resume could fall between the two and
// get nothing.)
func TestKeptBeforeSent(t *testing.T) {
	s := bustest.Start(t)
	keptService(t, s)
	a := s.Conn(t, home.RoleClient)
	for i := range 300 {
		id := fmt.Sprintf("req-soon-%d", i)
		c := ask(t, a, wire.SubjectResolve, id, `{"profile":"a"}`)
		if got := c.answer(t, "the request"); got != "for-a" {
			t.Fatalf("%s: %q; want for-a", id, got)
		}
		c.send(t, wire.SubjectResolveResume, "")
		m, err := c.sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("%s: resume sent as the answer arrived: %v", id, err)
		}
		var e echo
		if err := wire.Decode(wire.JSON, m.Data, &e); err != nil || e.Profile != "for-a" {
			t.Fatalf("%s: resume: %q, %v; want for-a", id, m.Data, err)
		}
		c.sub.Unsubscribe()
	}
}
