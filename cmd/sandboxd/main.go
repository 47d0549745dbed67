// Command sandboxd runs approved commands under kernel isolation. As a
// daemon it serves moat.sandbox.run; `sandboxd exec -- CMD` runs one command
// locally, with no bus and no policy.
package main

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/moatsec/moat/pkg/daemon"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/sandbox"
	"github.com/moatsec/moat/pkg/sandboxd"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "exec" {
		_ = daemon.SetProcs(0) // one P, as the daemon (pkg/daemon/procs.go)
		// The command hears the signals and ends as it chooses.
		sigs := make(chan os.Signal, 4)
		signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
		os.Exit(sandboxd.Exec(context.Background(), os.Args[2:], os.Stdin, os.Stdout, os.Stderr, sigs))
	}
	var (
		maxRuns, maxQueue, warm int
		drain                   time.Duration
	)
	daemon.Main(daemon.Spec{
		Role: home.RoleSandboxd,
		Flags: func(fs *flag.FlagSet) {
			fs.IntVar(&maxRuns, "max-runs", 0, "commands run at once (default 4 per CPU); past it an allowed run waits in the queue")
			fs.IntVar(&maxQueue, "max-queue", 0, "allowed runs waiting for a slot, fair across sessions, each until its caller's deadline (default 2 × max-runs); past it a 503")
			fs.DurationVar(&drain, "drain", sandboxd.DefaultDrain, "on SIGTERM (or busd stopping), how long runs may go on before they are cancelled; their ends are recorded either way")
			fs.IntVar(&warm, "pool", 2, "sandbox helpers kept started ahead of requests, per kind (0: none)")
		},
		// Runs start moat-sandbox-helper from this binary's directory (`exec`
		// refuses with the same message): without it no run could start, so
		// the daemon says so now rather than at its first request.
		Prepare: func(*daemon.Env) error { return sandbox.FindHelper() },
		Start: func(_ context.Context, e *daemon.Env) (daemon.Daemon, error) {
			d, err := sandboxd.Start(e.Conn(), sandboxd.Config{MaxRuns: maxRuns, MaxQueue: maxQueue, Drain: drain, Logger: e.Log, Sanitizer: e.Sanitizer})
			if err != nil {
				return nil, err
			}
			// Filled once the service answers: the helpers' start does not delay
			// readiness, and a run before the pool is full spawns its own helper.
			sandbox.EnablePool(warm)
			// Stopping, the helpers still waiting go, and their cgroups
			// with them (a run that starts while sandboxd drains spawns
			// its own helper).
			e.Go(func(ctx context.Context) {
				<-ctx.Done()
				sandbox.EnablePool(0)
			})
			e.Ready("isolation", sandbox.Mechanisms())
			return d, nil
		},
	})
}
