// Command policyd decides allow, prompt or deny for every command on the bus.
// Rules files (MOAT_HOME/rules/*.rules and --rules) reload on SIGHUP or change.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/moatsec/moat/pkg/audit"
	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/policy"
	"github.com/moatsec/moat/pkg/policyd"
	"github.com/moatsec/moat/pkg/wire"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "policyd:", err)
		os.Exit(1)
	}
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("policyd", flag.ContinueOnError)
	opts := client.Flags(fs, home.RolePolicyd)
	var rules listFlag
	fs.Var(&rules, "rules", "a rules file or directory of *.rules, besides MOAT_HOME/rules (repeatable)")
	approval := fs.Duration("approval-timeout", policyd.DefaultApprovalTimeout, "how long a prompt waits for a person before it is a deny")
	maxApprovals := fs.Int("max-approvals", policyd.DefaultMaxApprovals, "approvals waiting for a person at once; past it a prompt is denied (approval-busy)")
	deadline := fs.Duration("deadline", policyd.DefaultDeadline, "evaluation deadline, profile resolution included; past it a deny")
	grantRules := fs.String("grant-rules", "", "the rules file a \"rule\" grant appends to (default MOAT_HOME/rules/grants.rules)")
	unknown := fs.String("unknown", wire.VerdictAllow, "verdict for commands no rule names: allow (they run confined by their profile) or prompt")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *unknown != wire.VerdictAllow && *unknown != wire.VerdictPrompt {
		return fmt.Errorf("--unknown %q: want allow or prompt", *unknown)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	h, err := home.FromEnv()
	if err != nil {
		return err
	}
	if *grantRules == "" {
		*grantRules = filepath.Join(h.RulesDir(), "grants.rules")
	}
	engine := policy.New(policy.Options{Unknown: *unknown})
	watcher := &policyd.RulesWatcher{Engine: engine, Paths: append([]string{h.RulesDir()}, rules...), Logger: log}
	if err := watcher.Load(); err != nil {
		return err // a broken rules file at start is fatal: fix it first
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
	d, err := policyd.Start(c.Conn(), policyd.Config{Engine: engine, ApprovalTimeout: *approval, MaxApprovals: *maxApprovals, Deadline: *deadline, Logger: log, Sanitizer: san, RulesFile: *grantRules})
	if err != nil {
		return err
	}
	log.Info("policyd ready", "id", d.ID(), "bus", o.URL, "rules", engine.Rules().Len(), "unknown", *unknown, "approval_timeout", *approval)
	go watcher.Run(ctx)
	<-ctx.Done()
	log.Info("policyd stopping")
	return d.Stop()
}
