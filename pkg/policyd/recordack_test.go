package policyd_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/bus"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/policyd"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestAllowRecordAckedToCaller: a check that asks (wire.HeaderRecordAck)
// from an inbox, once policyd's records go steadily, is answered an allow at once, naming where its record is
// acked; JetStream's ack reaches the caller there, and the record it names
// is that check's decision. From a reply subject outside an inbox, or for
// a deny, the answer is final: no ack is sent to the caller, and an allow's
// record is in the stream before its answer.
func TestAllowRecordAckedToCaller(t *testing.T) {
	s := start(t, policyd.Config{})
	ctx := context.Background()
	p, err := s.Client(t, home.RoleClient).Resolve(ctx, &wire.ResolveRequest{Profile: "workspace-write", Workspace: s.ws})
	if err != nil {
		t.Fatal(err)
	}
	nc := s.Conn(t, home.RoleAdmin)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, wire.AuditStream)
	if err != nil {
		t.Fatal(err)
	}
	ask := func(t *testing.T, reply, id string, argv ...string) (answer *nats.Msg, ack *nats.Msg) {
		t.Helper()
		ans, err := nc.SubscribeSync(reply)
		if err != nil {
			t.Fatal(err)
		}
		defer ans.Unsubscribe()
		acks, err := nc.SubscribeSync(wire.RecordAckSubject(reply))
		if err != nil {
			t.Fatal(err)
		}
		defer acks.Unsubscribe()
		body, err := wire.Encode(wire.Msgpack, &wire.CheckRequest{RequestID: id, Argv: argv, Profile: wire.RefResolved(p)})
		if err != nil {
			t.Fatal(err)
		}
		m := nats.NewMsg(wire.SubjectCheck)
		m.Reply, m.Data = reply, body
		m.Header.Set(wire.HeaderContentType, wire.ContentMsgpack)
		m.Header.Set(wire.HeaderRecordAck, wire.RecordAckAsk)
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
		if answer, err = ans.NextMsg(5 * time.Second); err != nil {
			t.Fatalf("%s: no answer: %v", id, err)
		}
		ack, _ = acks.NextMsg(300 * time.Millisecond)
		return answer, ack
	}
	decision := func(t *testing.T, m *nats.Msg) wire.Decision {
		t.Helper()
		var d wire.Decision
		if err := wire.Decode(wire.Msgpack, m.Data, &d); err != nil {
			t.Fatalf("answer %q: %v", m.Data, err)
		}
		return d
	}
	recorded := func(t *testing.T, seq uint64, id, verdict string) {
		t.Helper()
		raw, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("record %d: %v", seq, err)
		}
		var ev wire.AuditEvent
		if err := wire.Decode(wire.Msgpack, raw.Data, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Kind != wire.KindPolicyDecision || ev.RequestID != id || ev.Verdict != verdict {
			t.Fatalf("record %d is %s %s %s, want %s's %s", seq, ev.Kind, ev.RequestID, ev.Verdict, id, verdict)
		}
	}

	// policyd's first record goes as Publish sends it, again until acked:
	// the stream has not yet answered it.
	t.Run("a fresh policyd", func(t *testing.T) {
		answer, ack := ask(t, nc.NewInbox(), "req-first", "ls")
		if d := decision(t, answer); d.Verdict != wire.VerdictAllow || answer.Header.Get(wire.HeaderRecordAck) != "" || ack != nil {
			t.Fatalf("answer %+v %v, ack %v: want a final allow", d, answer.Header, ack)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		recorded(t, info.State.LastSeq, "req-first", wire.VerdictAllow)
	})

	t.Run("from an inbox", func(t *testing.T) {
		reply := nc.NewInbox()
		answer, ack := ask(t, reply, "req-acked", "ls")
		if d := decision(t, answer); d.Verdict != wire.VerdictAllow {
			t.Fatalf("answer %+v", d)
		}
		if to := answer.Header.Get(wire.HeaderRecordAck); to != wire.RecordAckSubject(reply) {
			t.Fatalf("answer names the record's ack on %q, want %q", to, wire.RecordAckSubject(reply))
		}
		if ack == nil {
			t.Fatal("no ack of the record reached the caller")
		}
		var a struct {
			Stream string `json:"stream"`
			Seq    uint64 `json:"seq"`
		}
		if err := json.Unmarshal(ack.Data, &a); err != nil || a.Stream != wire.AuditStream {
			t.Fatalf("ack %q (%v), want one from %s", ack.Data, err, wire.AuditStream)
		}
		recorded(t, a.Seq, "req-acked", wire.VerdictAllow)
	})

	t.Run("outside an inbox", func(t *testing.T) {
		answer, ack := ask(t, "moat.test.reply", "req-final", "ls")
		if d := decision(t, answer); d.Verdict != wire.VerdictAllow || answer.Header.Get(wire.HeaderRecordAck) != "" {
			t.Fatalf("answer %+v %v, want a final allow", d, answer.Header)
		}
		if ack != nil {
			t.Fatalf("an ack went outside an inbox: %q", ack.Data)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		recorded(t, info.State.LastSeq, "req-final", wire.VerdictAllow)
	})

	t.Run("a deny", func(t *testing.T) {
		answer, ack := ask(t, nc.NewInbox(), "req-denied", "curl", "https://example.com")
		if d := decision(t, answer); d.Verdict != wire.VerdictDeny || answer.Header.Get(wire.HeaderRecordAck) != "" {
			t.Fatalf("answer %+v %v, want a final deny", d, answer.Header)
		}
		if ack != nil {
			t.Fatalf("a deny's record was acked to its caller: %q", ack.Data)
		}
	})
}

// TestAllowRidesOutAnAbsentStream: with policyd's records going steadily,
// the audit stream gone for a moment (a cluster electing its leader) makes
// the caller's ack a 503; the caller asks again without it, and policyd
// answers once the record is in the stream back: an allow, on record.
func TestAllowRidesOutAnAbsentStream(t *testing.T) {
	s := start(t, policyd.Config{})
	ctx := context.Background()
	c := s.Client(t, home.RoleClient)
	p, err := c.Resolve(ctx, &wire.ResolveRequest{Profile: "workspace-write", Workspace: s.ws})
	if err != nil {
		t.Fatal(err)
	}
	check := func(id string) wire.Decision {
		return c.Check(ctx, &wire.CheckRequest{RequestID: id, Argv: []string{"ls"}, Profile: wire.RefResolved(p)})
	}
	if d := check("req-steady"); d.Verdict != wire.VerdictAllow { // the stream has answered policyd
		t.Fatalf("first check: %+v", d)
	}
	admin, err := jetstream.New(s.Conn(t, home.RoleAdmin))
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteStream(ctx, wire.AuditStream); err != nil {
		t.Fatal(err)
	}
	back := make(chan error, 1)
	go func() {
		time.Sleep(time.Second)
		_, err := admin.CreateStream(ctx, bus.AuditStreamConfig(bus.DefaultAuditMaxBytes))
		back <- err
	}()
	d := check("req-absent")
	if err := <-back; err != nil {
		t.Fatal(err)
	}
	if d.Verdict != wire.VerdictAllow {
		t.Fatalf("a check while the stream was away for 1 s: %+v, want an allow once it is back", d)
	}
	st, err := admin.Stream(ctx, wire.AuditStream)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := st.GetLastMsgForSubject(ctx, wire.AuditSubject(wire.ServicePolicyd, wire.KindPolicyDecision))
	if err != nil {
		t.Fatalf("no decision on record: %v", err)
	}
	var ev wire.AuditEvent
	if err := wire.Decode(wire.Msgpack, raw.Data, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.RequestID != "req-absent" || ev.Verdict != wire.VerdictAllow {
		t.Fatalf("last decision on record: %s %s, want req-absent's allow", ev.RequestID, ev.Verdict)
	}
}
