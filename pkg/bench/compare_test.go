package bench

import (
	"strings"
	"testing"
)

// TestCompareMediansAndRatios: several reports a side are judged by their
// medians, and the ratios to a same-run baseline are compared beside the
// absolutes — here the absolutes drift up with a loaded machine while the
// ratio to bwrap falls.
func TestCompareMediansAndRatios(t *testing.T) {
	report := func(p50, bwrap float64) *Report {
		fp := Result{Scenario: "run", Name: "full pipeline", P50: p50, P99: 2 * p50, PerSecond: 100, Extra: map[string]float64{}}
		bw := Result{Scenario: "run", Name: "bwrap", P50: bwrap, P99: 2 * bwrap, PerSecond: 100, Extra: map[string]float64{}}
		rs := []Result{fp, bw}
		p50Against(rs, "bwrap")
		return &Report{Results: rs}
	}
	old := Median([]*Report{report(10, 5), report(30, 10), report(12, 6)}) // ratios 2.0, 3.0, 2.0
	new := Median([]*Report{report(13, 7), report(14, 8), report(50, 10)}) // ratios 1.86, 1.75, 5.0
	fp := old.Results[0]
	if fp.P50 != 12 || fp.Extra["x_bwrap_p50"] != 2 {
		t.Fatalf("old medians: %+v, want p50 12 and x_bwrap_p50 2", fp)
	}
	var b strings.Builder
	Compare(old, new, &b)
	line := func(series, metric string) string {
		for _, l := range strings.Split(b.String(), "\n") {
			if strings.HasPrefix(l, series+" ") && strings.Contains(l, " "+metric+" ") {
				return l
			}
		}
		return ""
	}
	if l := line("run/full pipeline", "x_bwrap_p50"); !strings.Contains(l, "-7.1% faster") {
		t.Errorf("ratio line %q, want -7.1%% faster (2.00 → 1.86)", l)
	}
	if l := line("run/full pipeline", "p50 ms"); !strings.Contains(l, "+16.7% slower") {
		t.Errorf("p50 line %q, want +16.7%% slower (12 → 14)\n%s", l, b.String())
	}
}
