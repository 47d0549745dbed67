package auditd_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/audit"
	"github.com/moatsec/moat/pkg/audit/store"
	"github.com/moatsec/moat/pkg/auditd"
	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
)

// BenchmarkEndToEnd publishes events into MOAT_AUDIT (asynchronously, as
// policyd does) while auditd drains them into its store; it reports events
// per second from the first publish until the last is stored, and the
// store's size against the same events as JSON lines.
func BenchmarkEndToEnd(b *testing.B) {
	s := bustest.Start(b)
	san, err := audit.LoadSanitizer(s.Home.HMACKey())
	if err != nil {
		b.Fatal(err)
	}
	key, _ := store.LoadSigningKey(s.Home.SigningKey())
	st, err := store.Open(store.Options{Dir: b.TempDir(), SigningKey: key})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, err := auditd.Start(ctx, s.Conn(b, home.RoleAuditd), auditd.Config{Store: st, Sanitizer: san, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Stop()
	pub, _ := audit.NewPublisher(s.Conn(b, home.RoleBenchd), "benchd", "bench")
	pub.SetSanitizer(san)
	before := st.Stats().Records
	b.ResetTimer()
	t0 := time.Now()
	for i := 0; i < b.N; i++ {
		ev := &wire.AuditEvent{Kind: "run.exit", Profile: "workspace-write", Argv: []string{"go", "test", "./..."},
			Cwd: "/srv/proj", Verdict: "allow", SessionID: "s1", RequestID: wire.NewID(), DurationUS: int64(i)}
		if err := pub.PublishAsync(ev); err != nil {
			b.Fatal(err)
		}
	}
	for st.Stats().Records < before+uint64(b.N) {
		if time.Since(t0) > 2*time.Minute {
			b.Fatalf("stored %d of %d", st.Stats().Records-before, b.N)
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(t0)
	b.StopTimer()
	stats := st.Stats()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(stats.Ratio, "json/disk")
	b.ReportMetric(float64(stats.DiskBytes)/float64(stats.Records), "bytes/event")
	if pub.Lost() != 0 {
		b.Fatalf("%d events not acked by JetStream", pub.Lost())
	}
}
