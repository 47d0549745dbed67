package bench

import (
	"strings"
	"testing"
)

func TestGoalsJudgeAndSayByHowMuch(t *testing.T) {
	rs := []Result{
		{Scenario: "coldstart", Name: "profiled", P50: 35},
		{Scenario: "coldstart", Name: "policyd", P50: 90},
		{Scenario: "run", Name: "full pipeline", P50: 18, Extra: map[string]float64{"cpu_ms_per_run": 10, "cpu_x_bwrap": 5}},
		{Scenario: "run", Name: "bwrap", P50: 9, Extra: map[string]float64{"cpu_ms_per_run": 2, "cpu_x_bwrap": 1}},
		{Scenario: "agents", Name: "8 agents", Extra: map[string]float64{"tasks_per_agent": 20, "total_ms": 1600}},
		{Scenario: "scaling", Name: "2 copies: checks", PerSecond: 5000},
		{Scenario: "audit", Name: "events", PerSecond: 30000, Extra: map[string]float64{"lost_acks": 2}},
		{Scenario: "throughput", Name: "10 runs/s", Extra: map[string]float64{"achieved_per_second": 10}},
		{Scenario: "throughput", Name: "200 runs/s", ErrorCount: 3, Extra: map[string]float64{"achieved_per_second": 110}},
	}
	got := map[string]Goal{}
	for _, g := range Goals(rs) {
		got[g.Name] = g
	}
	want := map[string]struct {
		met      bool
		measured float64
		off      string
	}{
		"profiled cold start p50":              {true, 35, ""},
		"policyd cold start p50":               {false, 90, "1.1× the target"},
		"moat run /bin/true p50":               {false, 18, "3.6× the target, 13 ms over"},
		"moat run /bin/true p50 against bwrap": {false, 2, "2.0× the target"},
		"moat run CPU per run against bwrap":   {false, 5, "5.0× the target"},
		"8 agents × 10 tasks, total":           {false, 800, "1.6× the target"},
		"decisions with two policyd copies":    {false, 5000, "25% of the target, 4.0× short"},
		"audit events end to end":              {false, 30000, "2 events lost"},
		"runs held without errors":             {true, 600, ""},
	}
	if len(got) != len(want) {
		t.Errorf("judged %d goals, want %d: %v", len(got), len(want), got)
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("goal %q not judged", name)
			continue
		}
		if g.Met != w.met || g.Measured != w.measured || !strings.Contains(g.Off, w.off) || (w.off == "") != (g.Off == "") {
			t.Errorf("%s: got met=%v measured=%v off=%q, want %v %v %q", name, g.Met, g.Measured, g.Off, w.met, w.measured, w.off)
		}
	}
	if gs := Goals(nil); len(gs) != 0 {
		t.Errorf("goals judged with nothing measured: %+v", gs)
	}
}
