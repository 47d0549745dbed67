package bench

import (
	"fmt"
	"strings"
)

// Goal is one figure moat aims for, judged against a report. A goal whose
// series did not run is absent from the report rather than counted as met.
type Goal struct {
	Name     string  `json:"name"`
	Target   string  `json:"target"`
	Measured float64 `json:"measured"`
	Unit     string  `json:"unit"`
	Met      bool    `json:"met"`
	// Off says by how much a missed goal falls short ("3.7× the target"),
	// and is empty when it is met.
	Off  string `json:"off,omitempty"`
	Note string `json:"note,omitempty"`
}

// atMost judges a figure that must stay at or under limit.
func atMost(name, unit string, v, limit float64) Goal {
	g := Goal{Name: name, Target: "≤ " + num(limit) + " " + unit, Measured: v, Unit: unit, Met: v <= limit}
	if !g.Met {
		g.Off = fmt.Sprintf("%.1f× the target, %s %s over", v/limit, num(v-limit), unit)
	}
	return g
}

// atLeast judges a figure that must reach floor.
func atLeast(name, unit string, v, floor float64) Goal {
	g := Goal{Name: name, Target: "≥ " + num(floor) + " " + unit, Measured: v, Unit: unit, Met: v >= floor}
	if !g.Met {
		if v > 0 {
			g.Off = fmt.Sprintf("%.0f%% of the target, %.1f× short", 100*v/floor, floor/v)
		} else {
			g.Off = "nothing measured"
		}
	}
	return g
}

// num prints a figure without exponents: whole above 100, three digits below.
func num(v float64) string {
	if v >= 100 || v <= -100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

// Goals judges the report against the figures of the benchd issue:
// each daemon cold-starts under 80 ms; `moat run -- /bin/true` through the
// pipeline at most 5 ms p50, faster than bwrap and using no more CPU; 8 agents × 10 tasks
// under 500 ms; a check by one caller at most 150 µs p50 (beside the ping
// of the same run); 20,000 decisions/s with two policyd copies (beside as
// many callers' pings); 20,000 audit
// events/s end to end with nothing lost; and the original floor of 100
// runs a minute held without errors.
func Goals(rs []Result) []Goal {
	find := func(scenario, name string) (Result, bool) {
		for _, x := range rs {
			if x.Scenario == scenario && x.Name == name {
				return x, true
			}
		}
		return Result{}, false
	}
	var gs []Goal
	for _, d := range Daemons {
		if x, ok := find("coldstart", d); ok {
			gs = append(gs, atMost(d+" cold start p50", "ms", x.P50, 80))
		}
	}
	if x, ok := find("run", "full pipeline"); ok {
		gs = append(gs, atMost("moat run /bin/true p50", "ms", x.P50, 5))
		if b, ok := find("run", "bwrap"); ok && b.P50 > 0 {
			g := atMost("moat run /bin/true p50 against bwrap", "× bwrap", x.P50/b.P50, 1)
			g.Note = fmt.Sprintf("bwrap p50 %.2f ms in the same run", b.P50)
			gs = append(gs, g)
		}
		if r, ok := x.Extra["cpu_x_bwrap"]; ok {
			g := atMost("moat run CPU per run against bwrap", "× bwrap", r, 1)
			g.Note = fmt.Sprintf("%.2f ms in sandboxd, its helper and the command; %.2f ms with the bus and every daemon", x.Extra["cpu_ms_per_run"], x.Extra["cpu_ms_stack_per_run"])
			gs = append(gs, g)
		}
	}
	if base, ok := find("shell", "moat run -- true"); ok && base.P50 > 0 {
		if x, ok := find("shell", "moat sh -c true"); ok {
			g := atMost("moat sh -c true p50 against moat run", "× moat run", x.P50/base.P50, 1.5)
			g.Note = fmt.Sprintf("moat run -- true p50 %.2f ms in the same run", base.P50)
			gs = append(gs, g)
		}
		if x, ok := find("shell", "mcp run true"); ok {
			gs = append(gs, atMost("MCP run of true p50 over moat run", "ms", x.P50-base.P50, 2))
		}
	}
	if x, ok := find("agents", "8 agents"); ok && x.Extra["tasks_per_agent"] > 0 {
		tasks := x.Extra["tasks_per_agent"]
		g := atMost("8 agents × 10 tasks, total", "ms", x.Extra["total_ms"]*10/tasks, 500)
		if tasks != 10 {
			g.Note = fmt.Sprintf("scaled from 8 × %.0f tasks in %.0f ms", tasks, x.Extra["total_ms"])
		}
		gs = append(gs, g)
	}
	if x, ok := find("check", "one caller"); ok {
		g := atMost("moat.policy.check one caller p50", "ms", x.P50, 0.150)
		if p, ok := find("check", pingOne); ok && p.P50 > 0 {
			g.Note = fmt.Sprintf("$SRV.PING p50 %.3f ms in the same run: %.1f × ping", p.P50, x.P50/p.P50)
		}
		gs = append(gs, g)
	}
	if x, ok := find("scaling", "2 copies: checks"); ok {
		g := atLeast("decisions with two policyd copies", "/s", x.PerSecond, 20000)
		if p, ok := find("check", fmt.Sprintf(pingMany, scalingCallers)); ok {
			g.Note = fmt.Sprintf("%d callers' $SRV.PING: %.0f /s in the same run", scalingCallers, p.PerSecond)
		}
		gs = append(gs, g)
	}
	if x, ok := find("audit", "events"); ok {
		g := atLeast("audit events end to end", "/s", x.PerSecond, 20000)
		if lost := x.Extra["lost_acks"]; lost > 0 {
			g.Met = false
			g.Off = strings.TrimPrefix(g.Off+"; ", "; ") + fmt.Sprintf("%.0f events lost", lost)
		}
		gs = append(gs, g)
	}
	best, ran := 0.0, false
	for _, x := range rs {
		if x.Scenario == "throughput" {
			ran = true
			if x.ErrorCount == 0 && x.Extra["achieved_per_second"] > best {
				best = x.Extra["achieved_per_second"]
			}
		}
	}
	if ran {
		g := atLeast("runs held without errors", "/min", best*60, 100)
		g.Note = "the highest step with no error; the ceiling is the first step that fails"
		gs = append(gs, g)
	}
	return gs
}

// goalLines renders goals for the table.
func goalLines(gs []Goal) string {
	var b strings.Builder
	for _, g := range gs {
		mark := "met   "
		if !g.Met {
			mark = "MISSED"
		}
		fmt.Fprintf(&b, "%s  %-40s %8s %-8s target %s", mark, g.Name, num(g.Measured), g.Unit, g.Target)
		if g.Off != "" {
			fmt.Fprintf(&b, " — %s", g.Off)
		}
		if g.Note != "" {
			fmt.Fprintf(&b, " (%s)", g.Note)
		}
		b.WriteByte('\n')
	}
	return b.String()
}
