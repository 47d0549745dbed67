// Command sandboxd runs approved commands under kernel isolation. As a
// daemon it serves moat.sandbox.run; `sandboxd exec -- CMD` runs one command
// locally, with no bus and no policy.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/moatsec/moat/pkg/audit"
	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/sandbox"
	"github.com/moatsec/moat/pkg/sandboxd"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "exec" {
		// The command hears the signals and ends as it chooses.
		sigs := make(chan os.Signal, 4)
		signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
		os.Exit(sandboxd.Exec(context.Background(), os.Args[2:], os.Stdin, os.Stdout, os.Stderr, sigs))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "sandboxd:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("sandboxd", flag.ContinueOnError)
	opts := client.Flags(fs, home.RoleSandboxd)
	maxRuns := fs.Int("max-runs", 0, "commands run at once (default 4 per CPU); past it an allowed run waits in the queue")
	maxQueue := fs.Int("max-queue", 0, "allowed runs waiting for a slot, fair across sessions, each until its caller's deadline (default 2 × max-runs); past it a 503")
	drain := fs.Duration("drain", sandboxd.DefaultDrain, "on SIGTERM (or busd stopping), how long runs may go on before they are cancelled; their ends are recorded either way")
	warm := fs.Int("pool", 2, "sandbox helpers kept started ahead of requests, per kind (0: none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// Runs start moat-sandbox-helper from this binary's directory (`exec`
	// refuses with the same message): without it no run could start, so
	// the daemon says so now rather than at its first request.
	if err := sandbox.FindHelper(); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	h, err := home.FromEnv()
	if err != nil {
		return err
	}
	o := opts(h)
	o.Wait, o.Logger = client.DaemonWait, log
	c, err := client.Dial(ctx, o)
	if err != nil {
		return err
	}
	defer c.Close()
	// busd stopping: stop as on SIGTERM, while it waits for this daemon.
	ctx, busStopping := context.WithCancel(ctx)
	defer busStopping()
	if err := c.OnBusStopping(busStopping); err != nil {
		return err
	}
	san, err := audit.LoadSanitizer(h.HMACKey())
	if err != nil {
		return err
	}
	d, err := sandboxd.Start(c.Conn(), sandboxd.Config{MaxRuns: *maxRuns, MaxQueue: *maxQueue, Drain: *drain, Logger: log, Sanitizer: san})
	if err != nil {
		return err
	}
	// Filled once the service answers: the helpers' start does not delay
	// readiness, and a run before the pool is full spawns its own helper.
	sandbox.EnablePool(*warm)
	log.Info("sandboxd ready", "id", d.ID(), "bus", o.URL, "isolation", sandbox.Mechanisms())
	<-ctx.Done()
	log.Info("sandboxd stopping")
	return d.Stop()
}
