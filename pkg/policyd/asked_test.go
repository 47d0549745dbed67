package policyd_test

import (
	"context"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/policyd"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestAskedOnRecordFirst: nobody may approve what is not on record. While
// the audit stream is away a check that needs a person is denied, and no
// person is asked: an approver that answers the moment a question appears
// sees none, and no grant is made.
func TestAskedOnRecordFirst(t *testing.T) {
	s := start(t, policyd.Config{})
	ctx := context.Background()
	ap := s.Client(t, home.RoleApprover)
	questions := make(chan string, 4)
	acks := make(chan *wire.ApprovalAck, 4)
	sub, err := ap.Conn().Subscribe(wire.SubjectApprovalAsk+".>", func(m *nats.Msg) {
		var q wire.ApprovalAsk
		if err := wire.Decode(wire.JSON, m.Data, &q); err != nil {
			t.Errorf("question: %v", err)
			return
		}
		questions <- q.ID
		go func() { // at once, for an hour
			if ack, err := ap.Answer(ctx, &wire.ApprovalAnswer{ID: q.ID, Verdict: wire.VerdictAllow, By: "alice", For: "1h"}); err == nil {
				acks <- ack
			}
		}()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	ap.Conn().Flush()

	sb := s.Client(t, home.RoleSandboxd) // its checks are vouched for: an answer may make a grant
	prof, err := sb.Resolve(ctx, &wire.ResolveRequest{Profile: "workspace-write", Workspace: s.ws})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := jetstream.New(s.Conn(t, home.RoleAdmin))
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteStream(ctx, wire.AuditStream); err != nil {
		t.Fatal(err)
	}
	d := sb.CheckResolved(ctx, &wire.CheckRequest{Argv: inline, Profile: wire.RefResolved(prof),
		Approval: wire.ApprovalOnRequest, ApprovalTimeoutMS: 30000}, nil)
	if d.Verdict != wire.VerdictDeny {
		t.Fatalf("a check needing a person while the audit stream is away: %+v", d)
	}
	time.Sleep(200 * time.Millisecond) // an answer under way lands
	select {
	case id := <-questions:
		t.Errorf("approval %s was asked of a person with no record of it", id)
	default:
	}
	select {
	case ack := <-acks:
		t.Errorf("an approver was told %+v for a check that was denied", ack)
	default:
	}
	keys, err := grantsKV(t, s).ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for k := range keys.Keys() {
		t.Errorf("grant %s made with no record of the question", k)
	}
}
