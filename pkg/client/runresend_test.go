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

// TestRunSentAgainAfterNoResponders: a run sent while the bus was down
// goes out when the connection comes back and meets no sandboxd (none is
// back yet): its own no-responders status proves nobody has it, so it is
// sent again, and runs once a sandboxd is there — where before it failed
// at once with "no sandboxd is running". (A run some sandboxd may have is
// never sent again: see docs/bus.md.) A stand-in sandboxd answers here.
func TestRunSentAgainAfterNoResponders(t *testing.T) {
	s := bustest.Start(t)
	r := &restarter{s: s, c: s.Client(t, home.RoleClient)}
	type answer struct {
		res *wire.RunResult
		err error
	}
	r.s.Server.Close()
	for r.c.Conn().IsConnected() {
		time.Sleep(10 * time.Millisecond)
	}
	a := make(chan answer, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		res, err := r.c.Run(ctx, &wire.RunRequest{RequestID: "req-lost", Argv: []string{"x"}}, nil)
		a <- answer{res, err}
	}()
	for n, _ := r.c.Conn().Buffered(); n <= 0; n, _ = r.c.Conn().Buffered() {
		time.Sleep(10 * time.Millisecond)
	}
	r.start(t)
	if err := r.c.Conn().Flush(); err != nil { // the bus has had it: nobody to receive it
		t.Fatal(err)
	}
	nc := r.s.Conn(t, home.RoleSandboxd)
	sub, err := nc.SubscribeSync(wire.SubjectRun)
	if err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(time.Minute)
	if err != nil {
		t.Fatalf("the run sent again: %v", err)
	}
	if m.Header.Get(wire.HeaderRequestID) != "req-lost" {
		t.Fatalf("the run sent again: headers %v; want request id req-lost", m.Header)
	}
	body, _ := wire.Encode(wire.Msgpack, &wire.RunResult{ExitCode: 3})
	res := nats.NewMsg(m.Reply)
	res.Header.Set(wire.HeaderContentType, wire.ContentMsgpack)
	res.Data = body
	if err := nc.PublishMsg(res); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-a:
		if got.err != nil || got.res.ExitCode != 3 {
			t.Fatalf("a run sent while the bus was down: %+v, %v; want exit 3", got.res, got.err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("a run sent while the bus was down: no answer in 2 min")
	}
	if err := r.c.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if extra, err := sub.NextMsg(0); err == nil {
		t.Fatalf("the run went out again after sandboxd had it: %v", extra.Header)
	}
}
