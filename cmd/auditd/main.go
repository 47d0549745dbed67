// Command auditd keeps moat's audit store: it drains the MOAT_AUDIT stream
// into sanitized, compressed, hash-chained, signed segments and answers
// queries. `auditd verify|export|query --dir DIR` work on a store offline.
package main

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/moatsec/moat/pkg/audit"
	"github.com/moatsec/moat/pkg/audit/store"
	"github.com/moatsec/moat/pkg/auditd"
	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "verify", "export", "query":
			code := auditd.Offline(os.Args[1], os.Args[2:], os.Stdout, os.Stderr)
			stop()
			os.Exit(code)
		}
	}
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "auditd:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("auditd", flag.ContinueOnError)
	opts := client.Flags(fs, home.RoleAuditd)
	dir := fs.String("dir", "", "store directory (default MOAT_HOME/audit)")
	segBytes := fs.Int64("segment-bytes", 64<<20, "rotate segments past this size")
	segAge := fs.Duration("segment-age", time.Hour, "rotate segments past this age")
	retainBytes := fs.Int64("retain-bytes", 0, "delete the oldest segments past this total (0: keep all)")
	retainAge := fs.Duration("retain-age", 0, "delete segments older than this (0: keep all)")
	anchorDir := fs.String("anchor-dir", "", "also keep the latest signed checkpoint as DIR/checkpoint.json (best on another disk); `auditd verify --anchor DIR` checks against it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	h, err := home.FromEnv()
	if err != nil {
		return err
	}
	if *dir == "" {
		*dir = h.AuditDir()
	}
	san, err := audit.LoadSanitizer(h.HMACKey())
	if err != nil {
		return err
	}
	key, err := store.LoadSigningKey(h.SigningKey())
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
	anchor, err := auditd.OpenAnchor(ctx, c.Conn(), *anchorDir, log)
	if err != nil {
		return err
	}
	latest, err := anchor.Latest(ctx, key.Public().(ed25519.PublicKey))
	if err != nil {
		return err
	}
	st, problem, err := auditd.OpenStore(store.Options{Dir: *dir, SigningKey: key, SegmentBytes: *segBytes, SegmentAge: *segAge,
		RetainBytes: *retainBytes, RetainAge: *retainAge, OnCheckpoint: anchor.Put, Anchor: latest}, log)
	if err != nil {
		return err
	}
	defer st.Close()
	for _, cut := range st.Cut() {
		log.Warn("incomplete final frame cut off at start (never acked: its events come again from the stream); the cut is on record as "+wire.KindAuditTailCut, "kept", cut)
	}
	d, err := auditd.Start(ctx, c.Conn(), auditd.Config{Store: st, Sanitizer: san, PublicKey: key.Public().(ed25519.PublicKey), Logger: log, ReadOnly: problem != "", Problem: problem, Anchor: anchor})
	if err != nil {
		return err
	}
	stats := st.Stats()
	log.Info("auditd ready", "id", d.ID(), "dir", *dir, "records", stats.Records, "segments", stats.Segments)
	select {
	case <-ctx.Done():
		log.Info("auditd stopping")
		return d.Stop()
	case err := <-d.Stopped():
		d.Stop()
		return err
	}
}
