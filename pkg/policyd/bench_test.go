package policyd_test

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/policy"
	"github.com/moatsec/moat/pkg/policyd"
	"github.com/moatsec/moat/pkg/wire"
)

// BenchmarkCheckOverBus: one caller, one decision at a time, with a resolved
// profile (as sandboxd sends it); the decision's audit ack included.
func BenchmarkCheckOverBus(b *testing.B) {
	s := start(b, policyd.Config{})
	c := s.Client(b, home.RoleClient)
	p, err := c.Resolve(context.Background(), &wire.ResolveRequest{Profile: "workspace-write", Workspace: s.ws})
	if err != nil {
		b.Fatal(err)
	}
	req := &wire.CheckRequest{Argv: []string{"bash", "-c", "cat a | grep b | wc -l"}, Profile: wire.RefResolved(p)}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req.RequestID = ""
		t0 := time.Now()
		if d := c.Check(context.Background(), req); d.Verdict != wire.VerdictAllow {
			b.Fatalf("%+v", d)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkCheckThroughput: 16 concurrent callers against two policyd copies.
func BenchmarkCheckThroughput(b *testing.B) {
	s := start(b, policyd.Config{})
	second, err := policyd.Start(s.Conn(b, home.RolePolicyd), policyd.Config{Engine: policy.New(policy.Options{}), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer second.Stop()
	c := s.Client(b, home.RoleClient)
	p, err := c.Resolve(context.Background(), &wire.ResolveRequest{Profile: "workspace-write", Workspace: s.ws})
	if err != nil {
		b.Fatal(err)
	}
	const callers = 16
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	t0 := time.Now()
	for g := 0; g < callers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cc := s.Client(b, home.RoleClient)
			for next.Add(1) <= int64(b.N) {
				d := cc.Check(context.Background(), &wire.CheckRequest{Argv: []string{"ls", "-la"}, Profile: wire.RefResolved(p)})
				if d.Verdict != wire.VerdictAllow {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0)
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d checks failed", failed.Load())
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "decisions/s")
}

// BenchmarkPing: the bus's floor in the same run, one request-reply to
// $SRV.PING.policyd — what BenchmarkCheckOverBus compares against.
func BenchmarkPing(b *testing.B) {
	s := start(b, policyd.Config{})
	nc := s.Conn(b, home.RoleClient)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := nc.Request("$SRV.PING.policyd", nil, 5*time.Second); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
