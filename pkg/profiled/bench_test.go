package profiled_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/audit"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
)

// BenchmarkResolveOverBus measures one client resolving one request at a time
// over loopback, the audit event's JetStream ack included. It reports the
// median and p99 latency; compare with BenchmarkPingOverBus, the bare
// request-reply round trip measured in the same run.
func BenchmarkResolveOverBus(b *testing.B) {
	s, ws := start(b)
	c := s.Client(b, home.RoleClient)
	req := &wire.ResolveRequest{Profile: "workspace-write", Workspace: ws, RequestID: "bench"}
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := c.Resolve(ctx, req); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

// BenchmarkPingOverBus is the baseline: a request-reply to profiled's
// $SRV.PING endpoint, which does no work.
func BenchmarkPingOverBus(b *testing.B) {
	s, _ := start(b)
	nc := s.Conn(b, home.RoleClient)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := nc.Request("$SRV.PING.profiled", nil, time.Second); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkAuditAckOverBus is the other part of a resolution's floor: one
// audit event published and acked by JetStream.
func BenchmarkAuditAckOverBus(b *testing.B) {
	s, _ := start(b)
	p, err := audit.NewPublisher(s.Conn(b, home.RoleProfiled), "profiled", "bench")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := p.Publish(ctx, &wire.AuditEvent{Kind: "bench"}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, lat)
}
