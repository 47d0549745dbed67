package bench

import (
	"context"
	"fmt"
	"os"
	"time"
)

// Run runs the named scenarios in order against the stack and gathers the
// report. A scenario that fails is noted and the rest still run.
func Run(ctx context.Context, s *Stack, ws string, names []string, opts Options, progress func(string)) *Report {
	r := &Report{Started: time.Now(), Machine: ThisMachine()}
	env := &Env{Stack: s, WS: ws, Opts: opts}
	for i, name := range names {
		sc, ok := Scenarios[name]
		if !ok {
			r.Problems = append(r.Problems, fmt.Sprintf("unknown scenario %q", name))
			continue
		}
		env.Progress = func(step string) {
			if progress != nil {
				progress(fmt.Sprintf("[%d/%d] %s", i+1, len(names), step))
			}
		}
		res, err := sc(ctx, env)
		r.Results = append(r.Results, res...)
		if err != nil {
			r.Problems = append(r.Problems, fmt.Sprintf("%s: %v", name, err))
		}
	}
	r.Goals = Goals(r.Results)
	r.Daemons = s.ProcStats()
	r.Seconds = time.Since(r.Started).Seconds()
	return r
}

// TerminalProgress draws a one-line progress bar on stderr when it is a
// terminal, and nothing otherwise.
func TerminalProgress() func(string) {
	fi, err := os.Stderr.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	start := time.Now()
	return func(step string) {
		fmt.Fprintf(os.Stderr, "\r\033[K%6.1fs  %s", time.Since(start).Seconds(), step)
	}
}
