package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// TestRunResumesAfterSilence: a sandboxd that falls silent (as one does
// whose permission to answer the bus lost; test/chaos restarts a real busd)
// hears the caller resume on wire.SubjectRunResume, with the run's request
// id and reply subject, and answers there. A resume nobody hears yet (its no-responders status) is
// not taken for "no sandboxd is running".
func TestRunResumesAfterSilence(t *testing.T) {
	s := bustest.Start(t)
	nc := s.Conn(t, home.RoleSandboxd)
	asked := make(chan *nats.Msg, 1)
	if _, err := nc.Subscribe(wire.SubjectRun, func(m *nats.Msg) { asked <- m }); err != nil { // and stays silent
		t.Fatal(err)
	}
	nc.Flush()
	c := s.Client(t, home.RoleClient)
	type answer struct {
		res *wire.RunResult
		err error
	}
	done := make(chan answer, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		res, err := c.Run(ctx, &wire.RunRequest{RequestID: "req-resume", Argv: []string{"x"}}, nil)
		done <- answer{res, err}
	}()
	req := <-asked
	// The caller's first resumes find nobody (a sandboxd not back yet).
	time.Sleep(2*wire.RunResumeAfter + time.Second)
	resumed := make(chan *nats.Msg, 8)
	if _, err := nc.Subscribe(wire.SubjectRunResume, func(m *nats.Msg) { resumed <- m }); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	var m *nats.Msg
	select {
	case m = <-resumed:
	case a := <-done:
		t.Fatalf("the run ended before it resumed: %+v, %v", a.res, a.err)
	}
	if m.Reply != req.Reply || m.Header.Get(wire.HeaderRequestID) != "req-resume" {
		t.Fatalf("resume: reply %q, request id %q; want the run's reply %q and its id", m.Reply, m.Header.Get(wire.HeaderRequestID), req.Reply)
	}
	body, _ := wire.Encode(wire.Msgpack, &wire.RunResult{RequestID: "req-resume", ExitCode: 3})
	r := nats.NewMsg(m.Reply)
	r.Header.Set(wire.HeaderContentType, wire.ContentMsgpack)
	r.Data = body
	if err := nc.PublishMsg(r); err != nil {
		t.Fatal(err)
	}
	if a := <-done; a.err != nil || a.res.ExitCode != 3 {
		t.Fatalf("after the resume: %+v, %v; want the result, exit 3", a.res, a.err)
	}
}
