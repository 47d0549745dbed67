package client_test

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// fakeSandboxd speaks the sandboxd side of the run protocol on the sandboxd
// key: a heartbeat whose reply is a control subject it listens on, the
// output in chunks, then the result claiming sent chunks (which may be a
// lie); every message on the control subject goes to ctl.
func fakeSandboxd(t *testing.T, s *bustest.Stack, out []byte, claim int, wait <-chan struct{}, ctl chan<- *nats.Msg) {
	t.Helper()
	nc := s.Conn(t, home.RoleSandboxd)
	control := nc.NewInbox()
	if _, err := nc.Subscribe(control, func(m *nats.Msg) { ctl <- m }); err != nil {
		t.Fatal(err)
	}
	_, err := nc.Subscribe(wire.SubjectRun, func(m *nats.Msg) {
		hb := nats.NewMsg(m.Reply)
		hb.Reply = control
		hb.Header.Set(wire.HeaderHeartbeat, "1")
		nc.PublishMsg(hb)
		n := 0
		for off := 0; off < len(out); off += wire.RunChunkBytes {
			c := nats.NewMsg(m.Reply)
			c.Header.Set(wire.HeaderStream, wire.StreamStdout)
			c.Data = out[off:min(off+wire.RunChunkBytes, len(out))]
			nc.PublishMsg(c)
			n++
		}
		if claim < 0 {
			claim = n
		}
		go func() {
			if wait != nil {
				<-wait
			}
			body, _ := wire.Encode(wire.Msgpack, &wire.RunResult{ExitCode: 3, Cancelled: wait != nil})
			r := nats.NewMsg(m.Reply)
			r.Header.Set(wire.HeaderContentType, wire.ContentMsgpack)
			r.Header.Set(wire.HeaderChunks, strconv.Itoa(claim))
			r.Data = body
			nc.PublishMsg(r)
		}()
	})
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
}

// TestRunGathersChunksAndAcks: 3 MiB of output in chunks comes back whole in
// the result, and the heartbeat is acked on the control subject.
func TestRunGathersChunksAndAcks(t *testing.T) {
	s := bustest.Start(t)
	out := bytes.Repeat([]byte("0123456789abcdef"), 3<<20/16)
	ctl := make(chan *nats.Msg, 8)
	fakeSandboxd(t, s, out, -1, nil, ctl)
	c := s.Client(t, home.RoleClient)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := c.Run(ctx, &wire.RunRequest{Argv: []string{"x"}}, nil)
	if err != nil || !bytes.Equal(res.Stdout, out) || res.ExitCode != 3 {
		t.Fatalf("run: %v, %d bytes", err, len(res.Stdout))
	}
	select {
	case m := <-ctl:
		if m.Header.Get(wire.HeaderHeartbeat) != wire.HeartbeatAck {
			t.Fatalf("control message %v, want an ack", m.Header)
		}
	case <-ctx.Done():
		t.Fatal("the heartbeat was not acked")
	}
}

// TestRunNamesLostChunks: a result claiming more chunks than arrived is a
// 500 saying output was lost, never a silently short output.
func TestRunNamesLostChunks(t *testing.T) {
	s := bustest.Start(t)
	fakeSandboxd(t, s, []byte("some output"), 5, nil, make(chan *nats.Msg, 8))
	c := s.Client(t, home.RoleClient)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.Run(ctx, &wire.RunRequest{Argv: []string{"x"}}, nil)
	if wire.CodeOf(err) != wire.CodeInternal || !strings.Contains(err.Error(), "1 of 5 output chunks arrived") {
		t.Fatalf("err = %v, want a 500 naming the lost chunks", err)
	}
}

// TestRunCancelsOnContext: when the caller's context ends, the client sends
// Moat-Cancel on the control subject and returns the result that follows.
func TestRunCancelsOnContext(t *testing.T) {
	s := bustest.Start(t)
	ctl := make(chan *nats.Msg, 8)
	release := make(chan struct{})
	fakeSandboxd(t, s, nil, -1, release, ctl)
	c := s.Client(t, home.RoleClient)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		res, err := c.Run(ctx, &wire.RunRequest{Argv: []string{"x"}}, nil)
		if err == nil && !res.Cancelled {
			t.Errorf("result %+v, want cancelled", res)
		}
		done <- err
	}()
	if m := <-ctl; m.Header.Get(wire.HeaderHeartbeat) != wire.HeartbeatAck {
		t.Fatalf("first control message %v, want an ack", m.Header)
	}
	cancel()
	if m := <-ctl; m.Header.Get(wire.HeaderCancel) == "" {
		t.Fatalf("control message %v, want a cancel", m.Header)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
