// Command auditd keeps moat's audit store: it drains the MOAT_AUDIT stream
// into sanitized, compressed, hash-chained, signed segments and answers
// queries. `auditd verify|export|query --dir DIR` work on a store offline.
package main

import (
	"context"
	"crypto/ed25519"
	"flag"
	"os"
	"time"

	"github.com/moatsec/moat/pkg/audit/store"
	"github.com/moatsec/moat/pkg/auditd"
	"github.com/moatsec/moat/pkg/daemon"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "verify", "export", "query":
			os.Exit(auditd.Offline(os.Args[1], os.Args[2:], os.Stdout, os.Stderr))
		}
	}
	var (
		dir, anchorDir        string
		segBytes, retainBytes int64
		segAge, retainAge     time.Duration
		key                   ed25519.PrivateKey
	)
	daemon.Main(daemon.Spec{
		Role: home.RoleAuditd,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&dir, "dir", "", "store directory (default MOAT_HOME/audit)")
			fs.Int64Var(&segBytes, "segment-bytes", 64<<20, "rotate segments past this size")
			fs.DurationVar(&segAge, "segment-age", time.Hour, "rotate segments past this age")
			fs.Int64Var(&retainBytes, "retain-bytes", 0, "delete the oldest segments past this total (0: keep all)")
			fs.DurationVar(&retainAge, "retain-age", 0, "delete segments older than this (0: keep all)")
			fs.StringVar(&anchorDir, "anchor-dir", "", "also keep the latest signed checkpoint as DIR/checkpoint.json (best on another disk); `auditd verify --anchor DIR` checks against it")
		},
		Prepare: func(e *daemon.Env) (err error) {
			if dir == "" {
				dir = e.Home.AuditDir()
			}
			key, err = store.LoadSigningKey(e.Home.SigningKey())
			return err
		},
		Start: func(ctx context.Context, e *daemon.Env) (daemon.Daemon, error) {
			return start(ctx, e, store.Options{Dir: dir, SigningKey: key, SegmentBytes: segBytes, SegmentAge: segAge,
				RetainBytes: retainBytes, RetainAge: retainAge}, anchorDir)
		},
	})
}

// running is auditd and the store it closes after it stops.
type running struct {
	*auditd.Daemon
	st *store.Store
}

func (r running) Stop() error {
	err := r.Daemon.Stop()
	r.st.Close()
	return err
}

// start opens the anchor and the store, then starts auditd on them.
func start(ctx context.Context, e *daemon.Env, opts store.Options, anchorDir string) (daemon.Daemon, error) {
	pub := opts.SigningKey.Public().(ed25519.PublicKey)
	anchor, err := auditd.OpenAnchor(ctx, e.Conn(), anchorDir, e.Log)
	if err != nil {
		return nil, err
	}
	if opts.Anchor, err = anchor.Latest(ctx, pub); err != nil {
		return nil, err
	}
	opts.OnCheckpoint = anchor.Put
	st, problem, err := auditd.OpenStore(opts, e.Log)
	if err != nil {
		return nil, err
	}
	for _, cut := range st.Cut() {
		e.Log.Warn("incomplete final frame cut off at start (never acked: its events come again from the stream); the cut is on record as "+wire.KindAuditTailCut, "kept", cut)
	}
	d, err := auditd.Start(ctx, e.Conn(), auditd.Config{Store: st, Sanitizer: e.Sanitizer, PublicKey: pub, Logger: e.Log,
		ReadOnly: problem != "", Problem: problem, Anchor: anchor})
	if err != nil {
		st.Close()
		return nil, err
	}
	stats := st.Stats()
	e.Ready("dir", opts.Dir, "records", stats.Records, "segments", stats.Segments)
	return running{d, st}, nil
}
