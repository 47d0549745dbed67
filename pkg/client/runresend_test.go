package client_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// TestRunSentAgainAcrossBusRestart: a run's request lost with the bus is
// sent again, the same request id and reply subject, marked
// wire.HeaderResent, once the caller's connection is back and nothing was
// heard of the run (a stand-in sandboxd answers here; test/chaos runs the
// real one):
//   - sent while the bus was down, it went out to no sandboxd when the
//     connection came back: sent again, it runs;
//   - received by a sandboxd that then said nothing across the restart:
//     sent again, it is refused 409 (its request id is claimed), which is
//     not taken for the run's answer; the result that follows is.
func TestRunSentAgainAcrossBusRestart(t *testing.T) {
	type answer struct {
		res *wire.RunResult
		err error
	}
	result := func(t *testing.T, nc *nats.Conn, reply string, exit int) {
		t.Helper()
		body, _ := wire.Encode(wire.Msgpack, &wire.RunResult{ExitCode: exit})
		m := nats.NewMsg(reply)
		m.Header.Set(wire.HeaderContentType, wire.ContentMsgpack)
		m.Data = body
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		lose func(t *testing.T, r *restarter, run func() <-chan answer) <-chan answer
		exit int
	}{
		{"sent while the bus was down", func(t *testing.T, r *restarter, run func() <-chan answer) <-chan answer {
			r.s.Server.Close()
			for r.c.Conn().IsConnected() {
				time.Sleep(10 * time.Millisecond)
			}
			a := run()
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
			if m.Header.Get(wire.HeaderResent) == "" || m.Header.Get(wire.HeaderRequestID) != "req-lost" {
				t.Fatalf("the run sent again: headers %v; want %s and request id req-lost", m.Header, wire.HeaderResent)
			}
			result(t, nc, m.Reply, 3)
			return a
		}, 3},
		{"refused as claimed when sent again", func(t *testing.T, r *restarter, run func() <-chan answer) <-chan answer {
			nc := r.s.Conn(t, home.RoleSandboxd)
			sub, err := nc.SubscribeSync(wire.SubjectRun)
			if err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			a := run()
			first, err := sub.NextMsg(time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			r.s.Server.Close()
			r.start(t)
			m, err := sub.NextMsg(time.Minute)
			if err != nil {
				t.Fatalf("the run sent again: %v", err)
			}
			if m.Header.Get(wire.HeaderResent) == "" || m.Reply != first.Reply {
				t.Fatalf("the run sent again: reply %q, headers %v; want the first's reply %q and %s", m.Reply, m.Header, first.Reply, wire.HeaderResent)
			}
			refused := nats.NewMsg(m.Reply)
			refused.Header.Set(wire.HeaderErrorCode, strconv.Itoa(wire.CodeConflict))
			refused.Header.Set(wire.HeaderError, "request req-lost was already run")
			if err := nc.PublishMsg(refused); err != nil {
				t.Fatal(err)
			}
			result(t, nc, m.Reply, 0)
			return a
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := bustest.Start(t)
			r := &restarter{s: s, c: s.Client(t, home.RoleClient)}
			run := func() <-chan answer {
				out := make(chan answer, 1)
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
					defer cancel()
					res, err := r.c.Run(ctx, &wire.RunRequest{RequestID: "req-lost", Argv: []string{"x"}}, nil)
					out <- answer{res, err}
				}()
				return out
			}
			a := tc.lose(t, r, run)
			select {
			case got := <-a:
				if got.err != nil || got.res.ExitCode != tc.exit {
					t.Fatalf("a run lost with the bus: %+v, %v; want exit %d", got.res, got.err, tc.exit)
				}
			case <-time.After(2 * time.Minute):
				t.Fatal("a run lost with the bus: no answer in 2 min")
			}
		})
	}
}
