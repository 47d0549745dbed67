// Command policyd decides allow, prompt or deny for every command on the bus.
// Rules files (MOAT_HOME/rules/*.rules and --rules) reload on SIGHUP or change.
package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/moatsec/moat/pkg/daemon"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/policy"
	"github.com/moatsec/moat/pkg/policyd"
	"github.com/moatsec/moat/pkg/wire"
)

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var (
		rules        listFlag
		approval     time.Duration
		maxApprovals int
		deadline     time.Duration
		grantRules   string
		unknown      string
		engine       *policy.Engine
		watcher      *policyd.RulesWatcher
	)
	daemon.Main(daemon.Spec{
		Role: home.RolePolicyd,
		Flags: func(fs *flag.FlagSet) {
			fs.Var(&rules, "rules", "a rules file or directory of *.rules, besides MOAT_HOME/rules (repeatable)")
			fs.DurationVar(&approval, "approval-timeout", policyd.DefaultApprovalTimeout, "how long a prompt waits for a person before it is a deny")
			fs.IntVar(&maxApprovals, "max-approvals", policyd.DefaultMaxApprovals, "approvals waiting for a person at once; past it a prompt is denied (approval-busy)")
			fs.DurationVar(&deadline, "deadline", policyd.DefaultDeadline, "evaluation deadline, profile resolution included; past it a deny")
			fs.StringVar(&grantRules, "grant-rules", "", "the file the \"rule\" grants in force are written to, a prefix_rule each; not loaded (default MOAT_HOME/grants.rules)")
			fs.StringVar(&unknown, "unknown", wire.VerdictAllow, "verdict for commands no rule names: allow (they run confined by their profile) or prompt")
		},
		Prepare: func(e *daemon.Env) error {
			if unknown != wire.VerdictAllow && unknown != wire.VerdictPrompt {
				return fmt.Errorf("--unknown %q: want allow or prompt", unknown)
			}
			if grantRules == "" {
				grantRules = filepath.Join(e.Home.Dir, "grants.rules")
			}
			if moved, err := policyd.RetireLegacyGrantRules(e.Home.RulesDir(), filepath.Join(e.Home.Dir, "grants.rules.legacy")); err != nil {
				return err
			} else if moved != "" {
				e.Log.Warn("moved the rule grants an older policyd kept among the loaded rules (each allowed its command everywhere) out of them; the grants stay in MOAT_GRANTS, each as scoped", "to", moved)
			}
			engine = policy.New(policy.Options{Unknown: unknown})
			watcher = &policyd.RulesWatcher{Engine: engine, Paths: append([]string{e.Home.RulesDir()}, rules...), Logger: e.Log}
			if watcher.Loads(grantRules) {
				return fmt.Errorf("--grant-rules %s is among the rules files policyd loads, where each grant's line would allow its command in every workspace and profile: give a file outside them (default MOAT_HOME/grants.rules)", grantRules)
			}
			return watcher.Load() // a broken rules file at start is fatal: fix it first
		},
		Start: func(_ context.Context, e *daemon.Env) (daemon.Daemon, error) {
			d, err := policyd.Start(e.Conn(), policyd.Config{Engine: engine, ApprovalTimeout: approval, MaxApprovals: maxApprovals,
				Deadline: deadline, Logger: e.Log, Sanitizer: e.Sanitizer, RulesFile: grantRules})
			if err != nil {
				return nil, err
			}
			e.Ready("rules", engine.Rules().Len(), "unknown", unknown, "approval_timeout", approval)
			e.Go(watcher.Run)
			return d, nil
		},
		Reload: func(*daemon.Env) { watcher.Reload() },
	})
}
