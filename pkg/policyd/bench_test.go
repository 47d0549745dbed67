package policyd_test

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/policy"
	"github.com/moatsec/moat/pkg/policyd"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go/jetstream"
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
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		req.RequestID = ""
		t0 := time.Now()
		if d := c.Check(context.Background(), req); d.Verdict != wire.VerdictAllow {
			b.Fatalf("%+v", d)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportCPU(b, cpu0)
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
	msgs0 := auditMsgs(b, s)
	b.ResetTimer()
	cpu0 := cpuTime()
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
	reportCPU(b, cpu0)
	// Each decision is one audit event; nothing drains the stream here.
	b.ReportMetric(float64(b.N)/float64(auditMsgs(b, s)-msgs0), "events/msg")
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
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := nc.Request("$SRV.PING.policyd", nil, 5*time.Second); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportCPU(b, cpu0)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// cpuTime is the CPU this process used so far (user and system): every
// part runs in it — callers, daemons and the embedded server — so CPU per
// operation is steadier than wall time on a machine others share.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, since time.Duration) {
	b.ReportMetric(float64((cpuTime()-since).Microseconds())/float64(b.N), "cpu-µs/op")
}

// auditMsgs counts the messages in MOAT_AUDIT (a batch is one).
func auditMsgs(b *testing.B, s *stack) uint64 {
	js, _ := jetstream.New(s.Conn(b, home.RoleAdmin))
	st, err := js.Stream(context.Background(), wire.AuditStream)
	if err != nil {
		b.Fatal(err)
	}
	return st.CachedInfo().State.Msgs
}
