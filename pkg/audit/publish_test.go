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

// TestSteady: a publisher is steady once the stream acked what it sent,
// until its connection is re-established or a publish fails — the times a
// record sent once (PublishAckedTo) could be lost.
func TestSteady(t *testing.T) {
	s := bustest.Start(t)
	nc := s.Conn(t, home.RolePolicyd)
	p, err := audit.NewPublisher(nc, home.RolePolicyd, "t")
	if err != nil {
		t.Fatal(err)
	}
	publish := func() error { return p.Publish(context.Background(), &wire.AuditEvent{Kind: "policy.decision"}) }
	if p.Steady() {
		t.Fatal("steady before anything was acked")
	}
	if err := publish(); err != nil || !p.Steady() {
		t.Fatalf("after an acked publish (%v): steady %v", err, p.Steady())
	}
	before := nc.Stats().Reconnects
	if err := nc.ForceReconnect(); err != nil {
		t.Fatal(err)
	}
	for nc.Stats().Reconnects == before || !nc.IsConnected() {
		time.Sleep(10 * time.Millisecond)
	}
	if p.Steady() {
		t.Fatal("steady across a reconnect")
	}
	if err := publish(); err != nil || !p.Steady() {
		t.Fatalf("after an acked publish (%v): steady %v", err, p.Steady())
	}
	admin, _ := jetstream.New(s.Conn(t, home.RoleAdmin))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := admin.Stream(ctx, wire.AuditStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.MaxBytes = int64(st.CachedInfo().State.Bytes) + 16
	if _, err := admin.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := publish(); err == nil || p.Steady() {
		t.Fatalf("a publish to a full stream: %v, steady %v", err, p.Steady())
	}
}
