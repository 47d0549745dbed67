package policyd_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/policy"
	"github.com/moatsec/moat/pkg/policyd"
	"github.com/moatsec/moat/test/testbin"
)

// TestRulesWatcherReload: Reload (policyd's SIGHUP) loads the files now,
// with no poll to notice them; one asked before Run starts is kept.
func TestRulesWatcherReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.rules")
	if err := os.WriteFile(path, []byte("prefix_rule(pattern=[\"make\"])\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := policy.New(policy.Options{})
	w := &policyd.RulesWatcher{Engine: e, Paths: []string{dir}, PollInterval: time.Hour, Logger: quiet}
	if err := w.Load(); err != nil || e.Rules().Len() != 1 {
		t.Fatalf("load: %v", err)
	}
	if err := os.WriteFile(path, []byte("prefix_rule(pattern=[\"make\"])\nprefix_rule(pattern=[\"go\"])\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.Reload() // before Run: kept
	w.Reload() // a second while one waits: nothing more to do, and no block
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	testbin.Eventually(t, time.Minute, "the rules reloaded", func() error {
		if n := e.Rules().Len(); n != 2 {
			return errors.New("still the old rules")
		}
		return nil
	})
	if err := os.WriteFile(path, []byte("prefix_rule(pattern=[\"go\"])\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.Reload()
	testbin.Eventually(t, time.Minute, "the rules reloaded again", func() error {
		if n := e.Rules().Len(); n != 1 {
			return errors.New("still the rules before")
		}
		return nil
	})
}
