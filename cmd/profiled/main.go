// Command profiled resolves profile names and workspaces into concrete
// policies on the bus. SIGHUP rereads MOAT_HOME/profiles.toml.
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
	"github.com/moatsec/moat/pkg/profile"
	"github.com/moatsec/moat/pkg/profiled"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "profiled:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("profiled", flag.ContinueOnError)
	opts := client.Flags(fs, home.RoleProfiled)
	allowTrusted := fs.Bool("allow-trusted", false, "offer the trusted profile (everything allowed, still audited)")
	profiles := fs.String("profiles", "", "custom profiles file (default MOAT_HOME/profiles.toml)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	h, err := home.FromEnv()
	if err != nil {
		return err
	}
	if *profiles == "" {
		*profiles = h.ProfilesFile()
	}
	r, err := profile.NewResolver(profile.Options{MoatHome: h.Dir, ProfilesFile: *profiles, AllowTrusted: *allowTrusted})
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
	d, err := profiled.Start(c.Conn(), r, log, san)
	if err != nil {
		return err
	}
	log.Info("profiled ready", "id", d.ID(), "bus", o.URL, "profiles", *profiles, "allow_trusted", *allowTrusted)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			if err := r.Reload(); err != nil {
				log.Error("reload failed; the previous profiles stay in force", "err", err)
			} else {
				log.Info("profiles reloaded", "file", *profiles)
			}
		case <-ctx.Done():
			log.Info("profiled stopping")
			return d.Stop()
		}
	}
}
