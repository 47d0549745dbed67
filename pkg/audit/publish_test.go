package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/audit"
	"github.com/moatsec/moat/pkg/bus"
	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// An event published while the audit stream is briefly away — a cluster
// electing a new leader for it — is recorded once the stream is back, and
// once only: Publish sends the same message (same event id) again.
func TestPublishRidesOutAnAbsentStream(t *testing.T) {
	s := bustest.Start(t)
	admin, _ := jetstream.New(s.Conn(t, home.RoleAdmin))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := admin.DeleteStream(ctx, wire.AuditStream); err != nil {
		t.Fatal(err)
	}
	back := make(chan error, 1)
	go func() {
		time.Sleep(1500 * time.Millisecond)
		_, err := admin.CreateStream(ctx, bus.AuditStreamConfig(bus.DefaultAuditMaxBytes))
		back <- err
	}()
	p, err := audit.NewPublisher(s.Conn(t, home.RoleSandboxd), home.RoleSandboxd, "t")
	if err != nil {
		t.Fatal(err)
	}
	ev := &wire.AuditEvent{Kind: "run.exit"}
	if err := p.Publish(context.Background(), ev); err != nil {
		t.Fatalf("publish across a 1.5 s absence of the stream: %v", err)
	}
	if err := <-back; err != nil {
		t.Fatal(err)
	}
	st, err := admin.Stream(ctx, wire.AuditStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.CachedInfo().State.Msgs; n != 1 {
		t.Fatalf("stream holds %d events, want the one", n)
	}
}
