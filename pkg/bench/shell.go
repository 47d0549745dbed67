package bench

import (
	"context"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// shell measures the ways an agent reaches moat, interleaved so each sees
// the same machine: `moat run -- true` (the baseline, a process per
// command), `moat sh -c true` (the same through bash -c), and the run tool
// of one long-lived `moat mcp` (the MCP client's view of a command).
func shell(ctx context.Context, e *Env) ([]Result, error) {
	if e.Stack.BinDir == "" {
		return nil, fmt.Errorf("the shell scenario runs the moat binary: give benchd the binaries' directory")
	}
	cli := func(args ...string) func() error {
		return func() error {
			cmd := e.Stack.command("moat", args...)
			cmd.Dir = e.WS
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("moat %v: %w: %s", args, err, out)
			}
			return nil
		}
	}
	server := e.Stack.command("moat", "mcp", "--workspace", e.WS, "--profile", "offline")
	sess, err := mcp.NewClient(&mcp.Implementation{Name: "benchd", Version: "1"}, nil).Connect(ctx, &mcp.CommandTransport{Command: server}, nil)
	if err != nil {
		return nil, fmt.Errorf("start moat mcp: %w", err)
	}
	defer sess.Close()
	ways := []struct {
		name string
		op   func() error
	}{
		{"moat run -- true", cli("run", "--profile", "offline", "--workspace", e.WS, "--", "true")},
		{"moat sh -c true", cli("sh", "--profile", "offline", "--workspace", e.WS, "-c", "true")},
		{"mcp run true", func() error {
			res, err := sess.CallTool(ctx, &mcp.CallToolParams{Name: "run", Arguments: map[string]any{"argv": []string{"true"}}})
			if err == nil && res.IsError {
				err = fmt.Errorf("the run tool failed: %v", res.Content)
			}
			return err
		}},
	}
	recs := make([]*Recorder, len(ways))
	for i, w := range ways {
		recs[i] = NewRecorder(w.name)
		w.op() // warm each path once
	}
	for i := 0; i < e.Opts.Count && ctx.Err() == nil; i++ {
		if i%10 == 0 {
			e.progress(fmt.Sprintf("shell %d/%d", i, e.Opts.Count))
		}
		for k, w := range ways {
			recs[k].Time(w.op)
		}
	}
	var out []Result
	var base float64
	for k := range ways {
		recs[k].Stop()
		r := recs[k].Result("shell")
		if k == 0 {
			base = r.P50
		}
		if base > 0 {
			r.Extra = map[string]float64{"x_run_p50": r.P50 / base, "minus_run_p50_ms": r.P50 - base}
		}
		out = append(out, r)
	}
	return out, nil
}
