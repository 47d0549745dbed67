// Command benchd drives load against the moat stack and measures it:
// `benchd --embedded` starts its own stack from ./bin, `benchd --bus URL`
// measures a running one, `benchd compare OLD.json NEW.json` lists what got
// slower or faster (several reports a side, comma-separated: their medians).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/moatsec/moat/pkg/bench"
	"github.com/moatsec/moat/pkg/home"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "compare" {
		os.Exit(compare(os.Args[2:]))
	}
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "benchd:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("benchd", flag.ContinueOnError)
	embedded := fs.Bool("embedded", false, "start a stack from --bin, every daemon a child process on a free port")
	bin := fs.String("bin", "bin", "where the moat binaries are (embedded)")
	url := fs.String("bus", os.Getenv(home.EnvBus), "bus of a running stack (creds benchd from MOAT_HOME)")
	scenarios := fs.String("scenarios", strings.Join(bench.Order, ","), "scenarios to run, in order")
	count := fs.Int("count", 200, "operations per series")
	duration := fs.Duration("duration", 10*time.Second, "time for rate-driven scenarios")
	conc := fs.Int("concurrency", 16, "callers at once")
	out := fs.String("out", "bench/out", "where the JSON report and the HTML charts go")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var stack *bench.Stack
	if *embedded {
		s, err := bench.StartStack(ctx, *bin, nil)
		if err != nil {
			return err
		}
		defer s.Close()
		stack = s
	} else {
		if *url == "" {
			return fmt.Errorf("give --embedded, or --bus URL of a running stack")
		}
		h, err := home.FromEnv()
		if err != nil {
			return err
		}
		stack = bench.Attach(*url, h)
	}
	ws, err := bench.NewWorkspace()
	if err != nil {
		return err
	}
	defer os.RemoveAll(ws)
	r := bench.Run(ctx, stack, ws, strings.Split(*scenarios, ","), bench.Options{Count: *count, Duration: *duration, Concurrency: *conc}, bench.TerminalProgress())
	r.Command = "benchd " + strings.Join(args, " ")
	fmt.Fprintln(os.Stderr)
	r.Table(os.Stdout)
	path, err := r.Write(*out)
	if err != nil {
		return err
	}
	fmt.Printf("\nreport: %s (and latest.html, latest.json)\n", path)
	return nil
}

func compare(args []string) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: benchd compare OLD.json[,OLD2.json…] NEW.json[,NEW2.json…] (several: the medians of alternated rounds)")
		return 2
	}
	var sides [2]*bench.Report
	for i, list := range args {
		var rs []*bench.Report
		for _, path := range strings.Split(list, ",") {
			r, err := bench.ReadReport(path)
			if err != nil {
				fmt.Fprintln(os.Stderr, "benchd:", err)
				return 1
			}
			rs = append(rs, r)
		}
		sides[i] = bench.Median(rs)
	}
	bench.Compare(sides[0], sides[1], os.Stdout)
	return 0
}
