package bench

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
)

// Compare lists what got slower or faster from old to new: p50, p99 and
// throughput, and the ratios to a baseline measured in the same run
// (x_bwrap_p50, cpu_x_bwrap, …), which are what to judge on a shared,
// noisy machine where absolutes drift between runs. Changes under 5% are
// noise.
func Compare(old, new *Report, w io.Writer) {
	prev := map[string]Result{}
	for _, x := range old.Results {
		prev[x.Scenario+"/"+x.Name] = x
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERIES\tMETRIC\tOLD\tNEW\tCHANGE\t")
	for _, x := range new.Results {
		o, ok := prev[x.Scenario+"/"+x.Name]
		if !ok {
			fmt.Fprintf(tw, "%s/%s\t(new)\t\t\t\t\n", x.Scenario, x.Name)
			continue
		}
		type metric struct {
			name         string
			old, new     float64
			higherBetter bool
		}
		ms := []metric{{"p50 ms", o.P50, x.P50, false}, {"p99 ms", o.P99, x.P99, false}, {"per sec", o.PerSecond, x.PerSecond, true}}
		for _, k := range sortedKeys(x.Extra) {
			if ratio(k) {
				ms = append(ms, metric{k, o.Extra[k], x.Extra[k], false})
			}
		}
		for _, m := range ms {
			if m.old == 0 {
				continue
			}
			ch := (m.new - m.old) / m.old
			verdict := "same"
			if math.Abs(ch) >= 0.05 {
				if (ch > 0) == m.higherBetter {
					verdict = "faster"
				} else {
					verdict = "slower"
				}
			}
			fmt.Fprintf(tw, "%s/%s\t%s\t%.3f\t%.3f\t%+.1f%% %s\t\n", x.Scenario, x.Name, m.name, m.old, m.new, ch*100, verdict)
		}
	}
	tw.Flush()
}

// ratio reports whether an extra is a ratio to a baseline of the same run
// (lower is better).
func ratio(key string) bool { return strings.HasPrefix(key, "x_") || strings.Contains(key, "_x_") }

func sortedKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Median is one report made of several runs of the same scenarios (rounds
// alternated with another build): each series' p50, p99, throughput and
// extras are the medians of the runs that have it.
func Median(rs []*Report) *Report {
	if len(rs) == 1 {
		return rs[0]
	}
	var order []string
	runs := map[string][]Result{}
	for _, r := range rs {
		for _, x := range r.Results {
			k := x.Scenario + "/" + x.Name
			if runs[k] == nil {
				order = append(order, k)
			}
			runs[k] = append(runs[k], x)
		}
	}
	out := &Report{}
	for _, k := range order {
		xs := runs[k]
		m := Result{Scenario: xs[0].Scenario, Name: xs[0].Name, Extra: map[string]float64{},
			Note: fmt.Sprintf("median of %d runs", len(xs))}
		m.P50 = median(xs, func(x Result) (float64, bool) { return x.P50, true })
		m.P99 = median(xs, func(x Result) (float64, bool) { return x.P99, true })
		m.PerSecond = median(xs, func(x Result) (float64, bool) { return x.PerSecond, true })
		for _, x := range xs {
			for e := range x.Extra {
				if _, done := m.Extra[e]; !done {
					m.Extra[e] = median(xs, func(x Result) (float64, bool) { v, ok := x.Extra[e]; return v, ok })
				}
			}
		}
		out.Results = append(out.Results, m)
	}
	return out
}

// median is the median of f over the results that have it.
func median(xs []Result, f func(Result) (float64, bool)) float64 {
	var vs []float64
	for _, x := range xs {
		if v, ok := f(x); ok {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return 0
	}
	sort.Float64s(vs)
	if n := len(vs); n%2 == 0 {
		return (vs[n/2-1] + vs[n/2]) / 2
	}
	return vs[len(vs)/2]
}
