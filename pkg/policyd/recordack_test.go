package policyd_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/bus"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/policyd"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestAllowRecordAckedToCaller: a check that asks with a token
// (wire.HeaderRecordAck) from a caller's inbox, once policyd's records go
// steadily, is answered an allow at once, naming where its record is acked
// (the reply subject and the token); JetStream's ack reaches the caller
// there, and the record it names is that check's decision. Every other
// answer is final, no ack going to the caller: policyd's first record, a
// reply subject outside a caller connection's inbox (a daemon's, the
// standard _INBOX.), a malformed token,
// a deny, an allow a person gave, an allow a grant gave.
func TestAllowRecordAckedToCaller(t *testing.T) {
	s := start(t, policyd.Config{ApprovalTimeout: 10 * time.Second})
	ctx := context.Background()
	p, err := s.Client(t, home.RoleClient).Resolve(ctx, &wire.ResolveRequest{Profile: "workspace-write", Workspace: s.ws})
	if err != nil {
		t.Fatal(err)
	}
	admin := s.Conn(t, home.RoleAdmin)
	nc := s.Conn(t, home.RoleClient) // a caller: its inbox is its own
	js, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, wire.AuditStream)
	if err != nil {
		t.Fatal(err)
	}
	// ask sends a check by hand and returns its answer (interim messages
	// skipped) and the message, if any, on its ack subject.
	ask := func(t *testing.T, reply, token string, cr *wire.CheckRequest) (answer, ack *nats.Msg) {
		t.Helper()
		nc := nc
		if !strings.HasPrefix(reply, wire.InboxPrefix(home.RoleClient)+".") {
			nc = admin // a reply subject no caller may listen on
		}
		ans, err := nc.SubscribeSync(reply)
		if err != nil {
			t.Fatal(err)
		}
		defer ans.Unsubscribe()
		acks, err := nc.SubscribeSync(reply + ".>")
		if err != nil {
			t.Fatal(err)
		}
		defer acks.Unsubscribe()
		body, err := wire.Encode(wire.Msgpack, cr)
		if err != nil {
			t.Fatal(err)
		}
		m := nats.NewMsg(wire.SubjectCheck)
		m.Reply, m.Data = reply, body
		m.Header.Set(wire.HeaderContentType, wire.ContentMsgpack)
		m.Header.Set(wire.HeaderRecordAck, token)
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
		for answer == nil || len(answer.Data) == 0 {
			if answer, err = ans.NextMsg(10 * time.Second); err != nil {
				t.Fatalf("%s: no answer: %v", cr.RequestID, err)
			}
		}
		ack, _ = acks.NextMsg(300 * time.Millisecond)
		return answer, ack
	}
	resolved := func(id string, argv ...string) *wire.CheckRequest {
		return &wire.CheckRequest{RequestID: id, Argv: argv, Profile: wire.RefResolved(p)}
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
	// final: the answer is verdict, final, no ack sent to the caller, and
	// (an allow) its record is the stream's last.
	final := func(t *testing.T, answer, ack *nats.Msg, id, verdict string) {
		t.Helper()
		if d := decision(t, answer); d.Verdict != verdict || answer.Header.Get(wire.HeaderRecordAck) != "" || ack != nil {
			t.Fatalf("answer %+v %v, ack %v: want a final %s", d, answer.Header, ack, verdict)
		}
		if verdict != wire.VerdictAllow {
			return
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		recorded(t, info.State.LastSeq, id, verdict)
	}

	// policyd's first record goes as Publish sends it, again until acked:
	// the stream has not yet answered it.
	t.Run("a fresh policyd", func(t *testing.T) {
		answer, ack := ask(t, nc.NewInbox(), wire.NewToken(), resolved("req-first", "ls"))
		final(t, answer, ack, "req-first", wire.VerdictAllow)
	})

	t.Run("from an inbox", func(t *testing.T) {
		reply, token := nc.NewInbox(), wire.NewToken()
		answer, ack := ask(t, reply, token, resolved("req-acked", "ls"))
		if d := decision(t, answer); d.Verdict != wire.VerdictAllow {
			t.Fatalf("answer %+v", d)
		}
		want := wire.RecordAckSubject(reply, token)
		if to := answer.Header.Get(wire.HeaderRecordAck); to != want {
			t.Fatalf("answer names the record's ack on %q, want %q", to, want)
		}
		if ack == nil || ack.Subject != want {
			t.Fatalf("the record's ack reached the caller as %v, want on %s", ack, want)
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

	t.Run("from a daemon's inbox", func(t *testing.T) {
		answer, ack := ask(t, wire.InboxPrefix(home.RoleSandboxd)+".x", wire.NewToken(), resolved("req-daemon", "ls"))
		final(t, answer, ack, "req-daemon", wire.VerdictAllow)
	})

	t.Run("from the standard inbox", func(t *testing.T) { // every connection without an inbox id reads there
		answer, ack := ask(t, "_INBOX.x", wire.NewToken(), resolved("req-standard", "ls"))
		final(t, answer, ack, "req-standard", wire.VerdictAllow)
	})

	t.Run("outside an inbox", func(t *testing.T) {
		answer, ack := ask(t, "moat.test.reply", wire.NewToken(), resolved("req-outside", "ls"))
		final(t, answer, ack, "req-outside", wire.VerdictAllow)
	})

	t.Run("a malformed token", func(t *testing.T) {
		answer, ack := ask(t, nc.NewInbox(), "r", resolved("req-token", "ls"))
		final(t, answer, ack, "req-token", wire.VerdictAllow)
	})

	t.Run("a deny", func(t *testing.T) {
		answer, ack := ask(t, nc.NewInbox(), wire.NewToken(), resolved("req-denied", "curl", "https://example.com"))
		final(t, answer, ack, "req-denied", wire.VerdictDeny)
	})

	t.Run("a person's allow", func(t *testing.T) {
		approver(t, &stack{Stack: s.Stack, ws: s.ws, policy: s.policy}, wire.VerdictAllow, 0)
		answer, ack := ask(t, nc.NewInbox(), wire.NewToken(), &wire.CheckRequest{RequestID: "req-person", Argv: inline,
			Workspace: s.ws, Profile: wire.RefName("workspace-write"), Approval: wire.ApprovalOnRequest})
		final(t, answer, ack, "req-person", wire.VerdictAllow)
	})

	t.Run("a grant's allow", func(t *testing.T) {
		argv := []string{"python3", "-c", "print(2)"}
		grant(t, s, "workspace-write", "", wire.ApprovalAnswer{For: "1h"}, argv...)
		answer, ack := ask(t, nc.NewInbox(), wire.NewToken(), &wire.CheckRequest{RequestID: "req-grant", Argv: argv,
			Workspace: s.ws, Profile: wire.RefName("workspace-write"), Approval: wire.ApprovalOnRequest})
		final(t, answer, ack, "req-grant", wire.VerdictAllow)
		if d := decision(t, answer); !strings.Contains(d.Reasons[0].Rule, "grant") {
			t.Fatalf("answer %+v, want a grant's allow", d)
		}
	})
}

// TestAllowRidesOutAnAbsentStream: with policyd's records going steadily,
// the audit stream gone for a moment (a cluster electing its leader) leaves
// the caller without an ack (the bus tells policyd, the publisher, that
// nobody took the record); after 2 s the caller asks again without it, and
// policyd answers once the record is in the stream back: an allow, on record.
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
	lastDecisionIs(t, s, "req-absent", wire.VerdictAllow)
}
