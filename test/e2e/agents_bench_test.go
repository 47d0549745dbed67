//go:build linux

package e2e

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// BenchmarkAgentPaths times /bin/true through each way an agent reaches
// moat, in the same run against the same stack, interleaved so load on the
// machine falls on all alike: moat run (the baseline), moat sh -c, and the
// MCP run tool of one long-lived moat mcp (and moat run -- bash -c true, to
// tell the shell's own cost from moat sh's). It reports each p50 and the
// ratios the issue sets goals for (sh/run at most 1.5; mcp-run at most 2 ms).
//
//	go test ./test/e2e -run '^$' -bench BenchmarkAgentPaths -benchtime 40x
func BenchmarkAgentPaths(b *testing.B) {
	e, _ := agentStack(b, "")
	c := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
	cmd := e.cmd("moat", "mcp", "--workspace", e.ws, "--profile", "workspace-write")
	s, err := c.Connect(context.Background(), &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	exe := func(args ...string) func() {
		return func() {
			c := e.cmd("moat", args...)
			c.Dir = e.ws
			if out, err := c.CombinedOutput(); err != nil {
				b.Fatalf("moat %v: %v\n%s", args, err, out)
			}
		}
	}
	paths := []struct {
		name string
		do   func()
	}{
		{"run", exe("run", "--profile", "workspace-write", "--", "/bin/true")},
		{"sh", exe("sh", "--profile", "workspace-write", "-c", "true")},
		{"run-bash", exe("run", "--profile", "workspace-write", "--", "bash", "-c", "true")},
		{"mcp", func() {
			res, err := s.CallTool(context.Background(), &mcp.CallToolParams{Name: "run", Arguments: map[string]any{"argv": []string{"/bin/true"}}})
			if err != nil || res.IsError {
				b.Fatalf("mcp run: %v %+v", err, res)
			}
		}},
	}
	for _, p := range paths { // warm every path once
		p.do()
	}
	lat := make([][]time.Duration, len(paths))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j, p := range paths {
			start := time.Now()
			p.do()
			lat[j] = append(lat[j], time.Since(start))
		}
	}
	b.StopTimer()
	p50 := map[string]time.Duration{}
	for j, p := range paths {
		sort.Slice(lat[j], func(a, c int) bool { return lat[j][a] < lat[j][c] })
		p50[p.name] = lat[j][len(lat[j])/2]
		b.ReportMetric(float64(p50[p.name].Microseconds())/1000, p.name+"-p50-ms")
	}
	b.ReportMetric(float64(p50["sh"])/float64(p50["run"]), "sh/run")
	b.ReportMetric(float64(p50["mcp"]-p50["run"])/1e6, "mcp-minus-run-ms")
}
