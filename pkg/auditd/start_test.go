package auditd_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/audit"
	"github.com/moatsec/moat/pkg/audit/store"
	"github.com/moatsec/moat/pkg/auditd"
	"github.com/moatsec/moat/pkg/bus"
	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// TestStartWaitsForStream: foreman starts auditd beside busd, so auditd may
// connect before MOAT_AUDIT exists. It must wait for the stream rather than
// exit, then drain what arrives.
func TestStartWaitsForStream(t *testing.T) {
	s := bustest.Start(t)
	js, err := jetstream.New(s.Conn(t, home.RoleAdmin))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := js.DeleteStream(ctx, wire.AuditStream); err != nil {
		t.Fatal(err)
	}
	san, err := audit.LoadSanitizer(s.Home.HMACKey())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	started := make(chan error, 1)
	var d *auditd.Daemon
	go func() {
		var err error
		d, err = auditd.Start(ctx, s.Conn(t, home.RoleAuditd), auditd.Config{Store: st, Sanitizer: san, Logger: slog.New(slog.DiscardHandler)})
		started <- err
	}()
	select {
	case err := <-started:
		t.Fatalf("auditd started without its stream: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	if _, err := js.CreateStream(ctx, bus.AuditStreamConfig(64<<20)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("auditd did not start once the stream existed: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("auditd still waiting 10s after the stream was created")
	}
	defer d.Stop()

	pub, err := audit.NewPublisher(s.Conn(t, home.RoleBenchd), "benchd", "test")
	if err != nil {
		t.Fatal(err)
	}
	pub.SetSanitizer(san)
	before := st.Stats().Records
	if err := pub.PublishAsync(&wire.AuditEvent{Kind: "run.exit", RequestID: wire.NewID(), Argv: []string{"true"}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for st.Stats().Records == before {
		if time.Now().After(deadline) {
			t.Fatal("event published after start was never stored")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
