// Command profiled resolves profile names and workspaces into concrete
// policies on the bus. SIGHUP rereads MOAT_HOME/profiles.toml.
package main

import (
	"context"
	"flag"

	"github.com/moatsec/moat/pkg/daemon"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/profile"
	"github.com/moatsec/moat/pkg/profiled"
)

func main() {
	var (
		allowTrusted bool
		profiles     string
		r            *profile.Resolver
	)
	daemon.Main(daemon.Spec{
		Role: home.RoleProfiled,
		Flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&allowTrusted, "allow-trusted", false, "offer the trusted profile (everything allowed, still audited)")
			fs.StringVar(&profiles, "profiles", "", "custom profiles file (default MOAT_HOME/profiles.toml)")
		},
		Prepare: func(e *daemon.Env) (err error) {
			if profiles == "" {
				profiles = e.Home.ProfilesFile()
			}
			r, err = profile.NewResolver(profile.Options{MoatHome: e.Home.Dir, ProfilesFile: profiles, AllowTrusted: allowTrusted})
			return err
		},
		Start: func(_ context.Context, e *daemon.Env) (daemon.Daemon, error) {
			e.Ready("profiles", profiles, "allow_trusted", allowTrusted)
			return profiled.Start(e.Conn(), profiled.Config{Resolver: r, Logger: e.Log, Sanitizer: e.Sanitizer})
		},
		Reload: func(e *daemon.Env) {
			if err := r.Reload(); err != nil {
				e.Log.Error("reload failed; the previous profiles stay in force", "err", err)
			} else {
				e.Log.Info("profiles reloaded", "file", profiles)
			}
		},
	})
}
