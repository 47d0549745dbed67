//go:build linux

package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStackBesideAnotherStack: benchd's own stack starts while another
// stack, with other keys, runs at MOAT_BUS (a user's): its home is its own.
func TestStackBesideAnotherStack(t *testing.T) {
	bin := t.TempDir()
	if out, err := exec.Command("../../scripts/build", bin).CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	first, err := StartStack(ctx, bin, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	t.Setenv("MOAT_BUS", first.URL)
	second, err := StartStack(ctx, bin, nil)
	if err != nil {
		t.Fatalf("a second stack beside %s: %v", first.URL, err)
	}
	defer second.Close()
	if second.URL == first.URL || second.Home.Dir == first.Home.Dir {
		t.Fatalf("the second stack shares the first's bus or home: %s %s", second.URL, second.Home.Dir)
	}
}

// TestScenarios runs every scenario briefly against a small embedded stack
// and checks the report's shape: counts add up, percentiles are ordered,
// the files are written and read back. The numbers are not asserted.
func TestScenarios(t *testing.T) {
	bin := t.TempDir()
	build := exec.Command("../../scripts/build", bin)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, err := StartStack(ctx, bin, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ws, err := NewWorkspace()
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(ws)
	const n = 6
	var steps []string
	r := Run(ctx, s, ws, Order, Options{Count: n, Duration: 2 * time.Second, Concurrency: 2}, func(step string) { steps = append(steps, step) })
	if len(r.Problems) > 0 {
		t.Fatalf("problems: %v", r.Problems)
	}
	if len(steps) < len(Order) {
		t.Errorf("progress reported %d steps", len(steps))
	}
	seen := map[string]int{}
	for _, x := range r.Results {
		seen[x.Scenario]++
		if x.Count > 0 && !(x.P50 <= x.P90 && x.P90 <= x.P99 && x.P99 <= x.P999 && x.P999 <= x.Max && x.P50 > 0) {
			t.Errorf("%s/%s: percentiles out of order: %+v", x.Scenario, x.Name, x)
		}
		var errs int64
		for _, c := range x.Errors {
			errs += c
		}
		if errs != x.ErrorCount {
			t.Errorf("%s/%s: errors by code add to %d, total says %d", x.Scenario, x.Name, errs, x.ErrorCount)
		}
		want := map[string]int64{"resolve/resolve": n, "check/one caller": n, "check/2 callers": 4 * n, "sequential/one agent": n}
		if x.Scenario == "run" || x.Scenario == "shell" {
			want[x.Scenario+"/"+x.Name] = n
		}
		if x.Scenario == "agents" {
			want[x.Scenario+"/"+x.Name] = int64(x.Extra["agents"] * x.Extra["tasks_per_agent"])
		}
		if w, ok := want[x.Scenario+"/"+x.Name]; ok && x.Count+x.ErrorCount != w {
			t.Errorf("%s/%s: %d done + %d errors, want %d", x.Scenario, x.Name, x.Count, x.ErrorCount, w)
		}
	}
	for _, sc := range Order {
		if seen[sc] == 0 {
			t.Errorf("scenario %s produced no result", sc)
		}
	}
	if seen["agents"] != 4 || seen["scaling"] != 6 || seen["coldstart"] != len(Daemons)+1 || seen["shell"] != 3 || seen["check"] != 4 {
		t.Errorf("series per scenario: %v", seen)
	}
	// One cold start per daemon, then: run p50, run against bwrap, run CPU
	// against bwrap, moat sh, MCP, agents, a check's p50, decisions, audit,
	// runs held.
	if len(r.Goals) != len(Daemons)+10 {
		t.Errorf("%d goals judged, want one per daemon and 10 more: %+v", len(r.Goals), r.Goals)
	}
	for _, g := range r.Goals {
		if g.Met == (g.Off != "") {
			t.Errorf("goal %q: met %v but off %q", g.Name, g.Met, g.Off)
		}
	}
	if len(r.Daemons) < 5 {
		t.Errorf("daemon stats: %+v", r.Daemons)
	}
	out := t.TempDir()
	path, err := r.Write(out)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ReadReport(path)
	if err != nil || len(back.Results) != len(r.Results) {
		t.Fatalf("read back: %v (%d results)", err, len(back.Results))
	}
	page, _ := os.ReadFile(filepath.Join(out, "latest.html"))
	if !strings.Contains(string(page), "<svg") || !strings.Contains(string(page), "Scaling") || !strings.Contains(string(page), "Agents against time") {
		t.Error("the HTML report lacks its charts")
	}
	var cmp strings.Builder
	Compare(back, r, &cmp)
	if !strings.Contains(cmp.String(), "same") || strings.Contains(cmp.String(), "slower") {
		t.Errorf("a report compared with itself:\n%s", cmp.String())
	}
	var table strings.Builder
	r.Table(&table)
	if !strings.Contains(table.String(), "P99.9 MS") || !strings.Contains(table.String(), "GOALS") {
		t.Errorf("table:\n%s", table.String())
	}
}
