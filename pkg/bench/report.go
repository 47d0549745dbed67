package bench

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is one benchd run.
type Report struct {
	Started  time.Time  `json:"started"`
	Seconds  float64    `json:"seconds"`
	Command  string     `json:"command"`
	Machine  Machine    `json:"machine"`
	Results  []Result   `json:"results"`
	Goals    []Goal     `json:"goals"`
	Daemons  []ProcStat `json:"daemons"`
	Problems []string   `json:"problems,omitempty"`
}

// Machine describes where the report was measured.
type Machine struct {
	CPUs     int    `json:"cpus"`
	MemBytes int64  `json:"mem_bytes"`
	Kernel   string `json:"kernel"`
	Go       string `json:"go"`
	Arch     string `json:"arch"`
}

// ThisMachine reads the machine's facts.
func ThisMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), Arch: runtime.GOARCH}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(string(b), "MemTotal: %d kB", &kb)
		m.MemBytes = kb << 10
	}
	return m
}

// Table writes the results for a person.
func (r *Report) Table(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "SCENARIO\tSERIES\tCOUNT\tERRORS\tPER SEC\tP50 MS\tP90 MS\tP99 MS\tP99.9 MS\tMAX MS\t")
	for _, x := range r.Results {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.1f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t\n", x.Scenario, x.Name, x.Count, x.ErrorCount, x.PerSecond, x.P50, x.P90, x.P99, x.P999, x.Max)
	}
	tw.Flush()
	for _, x := range r.Results {
		if len(x.Extra) == 0 && x.Note == "" {
			continue
		}
		keys := make([]string, 0, len(x.Extra))
		for k := range x.Extra {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s=%.4g", k, x.Extra[k]))
		}
		fmt.Fprintf(w, "  %s / %s: %s %s\n", x.Scenario, x.Name, strings.Join(parts, " "), x.Note)
	}
	if len(r.Goals) > 0 {
		fmt.Fprintf(w, "\nGOALS\n%s", goalLines(r.Goals))
	}
	if len(r.Daemons) > 0 {
		fmt.Fprintln(w, "\nDAEMON      PID     RSS MiB  CPU s")
		for _, d := range r.Daemons {
			fmt.Fprintf(w, "%-10s %6d  %7.1f  %5.2f\n", d.Name, d.PID, float64(d.RSSBytes)/(1<<20), d.CPUSecs)
		}
	}
	for _, p := range r.Problems {
		fmt.Fprintln(w, "problem:", p)
	}
}

// Write saves the report as JSON and as a self-contained HTML page with
// charts in dir, named after its start time, and as latest.{json,html}.
func (r *Report) Write(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	stamp := r.Started.UTC().Format("20060102-150405")
	page := r.HTML()
	for _, name := range []string{"report-" + stamp, "latest"} {
		if err := os.WriteFile(filepath.Join(dir, name+".json"), data, 0o644); err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, name+".html"), []byte(page), 0o644); err != nil {
			return "", err
		}
	}
	return filepath.Join(dir, "report-"+stamp+".json"), nil
}

// HTML renders the report with inline SVG charts: latency percentiles per
// series, the scaling curve, and agents against time.
func (r *Report) HTML() string {
	var b strings.Builder
	b.WriteString("<!doctype html><meta charset=utf-8><title>moat benchmark</title><style>body{font:14px sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}svg{background:#fafafa;margin:1em 0}</style>")
	fmt.Fprintf(&b, "<h1>moat benchmark</h1><p>%s · %d CPUs · %.1f GiB · Linux %s · %s · %.0f s</p><p><code>%s</code></p>",
		r.Started.UTC().Format(time.RFC3339), r.Machine.CPUs, float64(r.Machine.MemBytes)/(1<<30), html.EscapeString(r.Machine.Kernel), r.Machine.Go, r.Seconds, html.EscapeString(r.Command))
	var table strings.Builder
	r.Table(&table)
	fmt.Fprintf(&b, "<pre>%s</pre>", html.EscapeString(table.String()))
	b.WriteString("<h2>Latency percentiles (ms, log scale)</h2>")
	b.WriteString(percentileChart(r.Results))
	var scale, agentsPts []point
	for _, x := range r.Results {
		switch {
		case x.Scenario == "scaling" && strings.HasSuffix(x.Name, "checks"):
			scale = append(scale, point{x.Extra["copies"], x.PerSecond, "checks"})
		case x.Scenario == "scaling":
			scale = append(scale, point{x.Extra["copies"], x.PerSecond, "runs"})
		case x.Scenario == "agents":
			agentsPts = append(agentsPts, point{x.Extra["agents"], x.Extra["total_ms"], "total"})
		}
	}
	if len(scale) > 0 {
		b.WriteString("<h2>Scaling: operations per second by copies of policyd and sandboxd</h2>")
		b.WriteString(lineChart(scale, "copies", "per second"))
	}
	if len(agentsPts) > 0 {
		b.WriteString("<h2>Agents against time: total ms for all agents' tasks</h2>")
		b.WriteString(lineChart(agentsPts, "agents", "ms"))
	}
	return b.String()
}

type point struct {
	x, y   float64
	series string
}

func percentileChart(rs []Result) string {
	const w, rowH, left = 900, 22, 260
	h := rowH*len(rs) + 40
	maxV := 0.001
	for _, x := range rs {
		maxV = math.Max(maxV, x.Max)
	}
	scale := func(v float64) float64 {
		if v <= 0.001 {
			return 0
		}
		return (math.Log10(v) + 3) / (math.Log10(maxV) + 3) * float64(w-left-20)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg width="%d" height="%d" xmlns="http://www.w3.org/2000/svg">`, w, h)
	colors := []string{"#2b8cbe", "#7bccc4", "#fdae61", "#d7191c"}
	for i, x := range rs {
		y := 20 + i*rowH
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" text-anchor="end">%s</text>`, left-6, y+12, html.EscapeString(x.Scenario+" / "+x.Name))
		for k, v := range []float64{x.Max, x.P99, x.P90, x.P50} {
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="14" fill="%s"><title>%.3f ms</title></rect>`, left, y, scale(v), colors[3-k], v)
		}
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11">bars: p50 (darkest) · p90 · p99 · max; axis 1 µs … %.0f ms</text></svg>`, left, h-6, maxV)
	return b.String()
}

func lineChart(pts []point, xLabel, yLabel string) string {
	const w, h, pad = 600, 300, 50
	maxX, maxY := 1.0, 1.0
	series := map[string][]point{}
	for _, p := range pts {
		maxX, maxY = math.Max(maxX, p.x), math.Max(maxY, p.y)
		series[p.series] = append(series[p.series], p)
	}
	px := func(x float64) float64 { return pad + x/maxX*(w-2*pad) }
	py := func(y float64) float64 { return h - pad - y/maxY*(h-2*pad) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg width="%d" height="%d" xmlns="http://www.w3.org/2000/svg"><line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/><line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`,
		w, h, pad, h-pad, w-pad, h-pad, pad, pad, pad, h-pad)
	colors := []string{"#2b8cbe", "#d7191c", "#1a9641"}
	names := make([]string, 0, len(series))
	for n := range series {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names {
		ps := series[n]
		sort.Slice(ps, func(a, c int) bool { return ps[a].x < ps[c].x })
		var path []string
		for _, p := range ps {
			path = append(path, fmt.Sprintf("%.1f,%.1f", px(p.x), py(p.y)))
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s: %.4g</title></circle>`, px(p.x), py(p.y), colors[i%3], n, p.y)
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" points="%s"/><text x="%d" y="%d" font-size="11" fill="%s">%s</text>`, colors[i%3], strings.Join(path, " "), w-pad-60, pad+14*i, colors[i%3], n)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11">%s (max %.4g)</text><text x="4" y="%d" font-size="11">%s (max %.4g)</text></svg>`, w/2, h-12, xLabel, maxX, pad-10, yLabel, maxY)
	return b.String()
}

// ReadReport loads a report written by Write.
func ReadReport(path string) (*Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}
