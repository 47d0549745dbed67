//go:build linux

package cluster

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/audit"
	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/moatsec/moat/test/testbin"
)

// A stack for the benchmarks: one busd alone, or three in a cluster with
// the daemons spread so that a run crosses routes (client on busd-0,
// profiled and auditd on busd-0 and -1, policyd on busd-2, sandboxd on
// busd-1). Both run in the same `go test -bench` invocation, so the single
// server is the same-run baseline:
//
//	go test ./test/cluster -run '^$' -bench . -benchtime 200x
type benchStack struct {
	w      *world
	s      *servers
	client *client.Client // on the first server
	bench  *client.Client // benchd's key, on the first server
}

func startBench(b *testing.B, n int) *benchStack {
	w := newWorld(b)
	base, err := os.MkdirTemp("/var/tmp", "moat-cluster-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(base) })
	w.ws = base
	var s *servers
	if n == 1 {
		s = &servers{w: w, nodes: []*node{{name: "alone", client: testbin.FreePort(b)}}}
		s.nodes[0].p = w.start("alone", nil, "busd", "--listen", testbin.Addr(s.nodes[0].client))
	} else {
		s = w.cluster(n)
		s.healthy(90*time.Second, 3)
	}
	on := func(i int) string { return s.urls(i % len(s.nodes)) }
	for _, d := range []struct {
		bin string
		on  int
	}{{"profiled", 0}, {"policyd", 2}, {"sandboxd", 1}, {"auditd", 1}} {
		w.daemon(d.bin, d.bin, on(d.on))
	}
	first := s.nodes[0].url() // no fail-over list: the client stays on the first server
	bs := &benchStack{w: w, s: s, client: w.dial(home.RoleClient, first), bench: w.dial(home.RoleBenchd, first)}
	waitServices(b, bs.client, map[string]int{"profiled": 1, "policyd": 1, "sandboxd": 1, "auditd": 1})
	return bs
}

// BenchmarkPipeline: one `moat run -- true` after another (resolve, check,
// decision recorded, run, exit recorded), p50 and p90 reported.
func BenchmarkPipeline(b *testing.B) {
	for _, n := range []int{1, 3} {
		bs := startBench(b, n)
		b.Run(fmt.Sprintf("servers=%d", n), func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				start := time.Now()
				res, err := bs.client.Run(context.Background(), &wire.RunRequest{Profile: "workspace-write",
					Workspace: bs.w.ws, Cwd: bs.w.ws, Argv: []string{"true"}}, nil)
				if err != nil || res.ExitCode != 0 {
					b.Fatalf("run: %v %+v", err, res)
				}
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds())/1000, "p90-ms")
		})
	}
}

// BenchmarkAuditStream: events published by eight publishers at once until
// auditd has stored them all (MOAT_AUDIT empty again), with one copy of the
// stream (one server) and with three (the cluster): events per second end
// to end.
func BenchmarkAuditStream(b *testing.B) {
	for _, n := range []int{1, 3} {
		bs := startBench(b, n)
		js := adminJS(b, bs.w, bs.s.nodes[0].url())
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			const publishers = 8
			start := time.Now()
			var wg sync.WaitGroup
			for p := range publishers {
				pub, err := audit.NewPublisher(bs.bench.Conn(), home.RoleBenchd, fmt.Sprintf("bench-%d", p))
				if err != nil {
					b.Fatal(err)
				}
				wg.Go(func() {
					for i := p; i < b.N; i += publishers {
						if err := pub.Publish(context.Background(), &wire.AuditEvent{Kind: "bench.flood"}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			testbin.Eventually(b, 120*time.Second, "auditd stored every event", func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				st, err := bs.s.stream(ctx, js, wire.AuditStream)
				if err == nil && st.msgs != 0 {
					err = fmt.Errorf("%d events left", st.msgs)
				}
				return err
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}
