package policyd

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moatsec/moat/pkg/policy"
)

// RulesWatcher keeps an engine's rules in step with the files: it reloads
// when asked (Reload, which policyd's SIGHUP calls) and when a file changes
// (checked every PollInterval; a change is
// taken once it has held still for one interval, so a file caught half
// written is not loaded). A broken file keeps the rules in force, logs why
// and makes every decision say so (file.not-reloaded) until a load succeeds;
// requests are never dropped, because the engine swaps rulesets atomically.
type RulesWatcher struct {
	Engine       *policy.Engine
	Paths        []string // files and directories of *.rules
	PollInterval time.Duration
	Logger       *slog.Logger
	last         string // fingerprint of the files last loaded (or tried)
	changed      string // a new fingerprint seen once, waiting to hold still
	kicksOnce    sync.Once
	kicks        chan struct{} // Reload's requests, one kept while Run is busy
}

// Reload has Run reload the rules now, as SIGHUP does; it does not wait.
// Safe from any goroutine, also before Run starts.
func (w *RulesWatcher) Reload() {
	select {
	case w.kick() <- struct{}{}:
	default: // one is pending already
	}
}

func (w *RulesWatcher) kick() chan struct{} {
	w.kicksOnce.Do(func() { w.kicks = make(chan struct{}, 1) })
	return w.kicks
}

// Load loads the rules now; an error leaves the engine unchanged.
func (w *RulesWatcher) Load() error {
	w.last = fingerprint(w.Paths)
	rs, err := policy.LoadRules(w.Paths...)
	if err != nil {
		return err
	}
	w.Engine.SetRules(rs)
	w.Engine.SetRulesProblem("")
	w.Logger.Info("rules loaded", "files", len(rs.Files()), "rules", rs.Len(), "network_rules", len(rs.NetworkRules()))
	for _, n := range rs.Notices() {
		w.Logger.Warn("rules file used in part", "notice", n)
	}
	return nil
}

// Run watches until ctx ends.
func (w *RulesWatcher) Run(ctx context.Context) {
	kicks := w.kick()
	interval := w.PollInterval
	if interval <= 0 {
		interval = time.Second
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-kicks:
			w.reload("asked (SIGHUP)")
		case <-tick.C:
			fp := fingerprint(w.Paths)
			switch {
			case fp == w.last:
			case fp == w.changed:
				w.reload("a rules file changed")
			default:
				w.changed = fp
			}
		}
	}
}

func (w *RulesWatcher) reload(why string) {
	if err := w.Load(); err != nil {
		w.Logger.Error("rules not reloaded; the previous rules stay in force", "why", why, "err", err)
		w.Engine.SetRulesProblem(fmt.Sprintf("rules not reloaded, the previous rules are still in force: %v", err))
	}
}

// fingerprint names every rules file with its size and modification time.
func fingerprint(paths []string) string {
	var parts []string
	for _, p := range paths {
		files := []string{p}
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			files, _ = filepath.Glob(filepath.Join(p, "*.rules"))
		}
		for _, f := range files {
			if fi, err := os.Stat(f); err == nil {
				parts = append(parts, fmt.Sprintf("%s:%d:%d", f, fi.Size(), fi.ModTime().UnixNano()))
			}
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, "|")
}
