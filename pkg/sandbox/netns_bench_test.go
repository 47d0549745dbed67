//go:build linux

package sandbox

import (
	"context"
	"slices"
	"testing"
	"time"
)

// BenchmarkRunNet: what egress adds to a run — the listeners in the run's
// network namespace, the proxy, resolv.conf — against the same profile
// offline (web is workspace-write with an allowlist), the two interleaved in
// one loop with the helper pool on, as sandboxd runs them; each run a bare
// `true`:
//
//	go test ./pkg/sandbox -run '^$' -bench RunNet -benchtime 100x
func BenchmarkRunNet(b *testing.B) {
	w := newNetWorld(b)
	EnablePool(2)
	defer EnablePool(0)
	lat := map[string][]time.Duration{}
	for b.Loop() {
		for _, prof := range []string{"workspace-write", "web"} {
			t0 := time.Now()
			res, err := Run(context.Background(), &Spec{Argv: []string{"true"}, Profile: w.profs[prof], Net: NetHooks{Resolver: w.net, Dialer: w.net}})
			if err != nil || res.ExitCode != 0 {
				b.Fatalf("%v %+v", err, res)
			}
			lat[prof] = append(lat[prof], time.Since(t0))
		}
	}
	p50 := func(l []time.Duration) float64 {
		slices.Sort(l)
		return float64(l[len(l)/2].Microseconds())
	}
	off, on := p50(lat["workspace-write"]), p50(lat["web"])
	b.ReportMetric(off, "offline-p50-µs")
	b.ReportMetric(on, "egress-p50-µs")
	b.ReportMetric(on-off, "added-p50-µs")
}
