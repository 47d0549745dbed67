package policyd_test

import (
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/policyd"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// TestResumeAnswersOnlyTheCaller: a resume (wire.SubjectCheckResume) gets a
// check's answer sent again, the same decision, to the check's own reply
// subject only: a resume naming another reply subject, or a request id
// policyd did not answer, gets nothing.
func TestResumeAnswersOnlyTheCaller(t *testing.T) {
	s := start(t, policyd.Config{})
	nc := s.Conn(t, home.RoleClient)
	sub := func() (string, chan *nats.Msg) {
		inbox, ch := nc.NewInbox(), make(chan *nats.Msg, 8)
		if _, err := nc.ChanSubscribe(inbox, ch); err != nil {
			t.Fatal(err)
		}
		return inbox, ch
	}
	mine, answers := sub()
	other, stolen := sub()
	next := func(ch chan *nats.Msg) *nats.Msg {
		select {
		case m := <-ch:
			return m
		case <-time.After(30 * time.Second):
			t.Fatal("no answer in 30 s")
		}
		return nil
	}
	decision := func(m *nats.Msg) wire.Decision {
		var d wire.Decision
		if err := wire.Decode(wire.Msgpack, m.Data, &d); err != nil || d.Verdict == "" {
			t.Fatalf("answer %v %q: %v", m.Header, m.Data, err)
		}
		return d
	}

	id := wire.NewID()
	body, err := wire.Encode(wire.Msgpack, &wire.CheckRequest{RequestID: id, Argv: []string{"ls"}, Workspace: s.ws, Profile: wire.RefName("workspace-write")})
	if err != nil {
		t.Fatal(err)
	}
	req := &nats.Msg{Subject: wire.SubjectCheck, Reply: mine, Data: body, Header: nats.Header{}}
	req.Header.Set(wire.HeaderContentType, wire.ContentMsgpack)
	req.Header.Set(wire.HeaderRequestID, id)
	if err := nc.PublishMsg(req); err != nil {
		t.Fatal(err)
	}
	first := decision(next(answers))

	resume := func(requestID, reply string) {
		m := nats.NewMsg(wire.SubjectCheckResume)
		m.Reply = reply
		m.Header.Set(wire.HeaderRequestID, requestID)
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	// In this order, so that anything the first two got sent arrives
	// before the answer the third gets.
	resume(wire.NewID(), mine)
	resume(id, other)
	resume(id, mine)
	again := decision(next(answers))
	if again.Verdict != first.Verdict || again.DecidedBy != first.DecidedBy || len(again.Reasons) != len(first.Reasons) {
		t.Errorf("sent again: %+v; first: %+v", again, first)
	}
	if len(answers) != 0 || len(stolen) != 0 {
		t.Errorf("%d more answers to the caller, %d to another reply subject; want none", len(answers), len(stolen))
	}
}
