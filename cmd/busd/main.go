// Command busd embeds the NATS server with JetStream that every moat daemon
// talks through. It admits only the keys `moat init` wrote. Alone by
// default; with --cluster one server of a cluster, with --leaf-listen a hub
// for worker hosts, with --hub a worker host's leaf (docs/operations.md).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/BurntSushi/toml"
	"github.com/moatsec/moat/pkg/bus"
	"github.com/moatsec/moat/pkg/daemon"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "busd:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "leaf-key" {
		return leafKey(args[1:], stdout)
	}
	fs := flag.NewFlagSet("busd", flag.ContinueOnError)
	config := fs.String("config", "", "TOML file of these flags (`cluster-listen = \"127.0.0.1:6222\"`, `routes = [...]`); flags given win")
	listen := fs.String("listen", envOr("MOAT_LISTEN", wire.DefaultListen), "HOST:PORT to serve on (env MOAT_LISTEN); port 0 picks a free one")
	sync := fs.Duration("sync", bus.DefaultSync, "how often JetStream fsyncs: acked events survive power loss after this")
	maxBytes := fs.Int64("audit-max-bytes", bus.DefaultAuditMaxBytes, "bound of the MOAT_AUDIT stream; when full, commands are refused until auditd drains it")
	runsMaxBytes := fs.Int64("runs-max-bytes", bus.DefaultRunsMaxBytes, "bound of the MOAT_RUNS stream (run claims, kept a day); when full, runs are refused (503) until claims age out")
	var t bus.Topology
	fs.StringVar(&t.Name, "name", "", "server name, unique in a cluster (default moat-bus, or busd-<route port>)")
	fs.StringVar(&t.Cluster, "cluster", "", "cluster name: join a cluster (needs --cluster-listen and --routes)")
	fs.StringVar(&t.RouteListen, "cluster-listen", "", "HOST:PORT of the route listener other servers connect to")
	routes := fs.String("routes", "", "seed routes, HOST:PORT,HOST:PORT (this server may be among them)")
	fs.StringVar(&t.RouteSecret, "route-secret", "", "file with the route password, the same on every server (default MOAT_HOME/creds/route.secret, made when missing)")
	fs.StringVar(&t.LeafListen, "leaf-listen", "", "HOST:PORT taking worker hosts' leaf connections (keys in MOAT_HOME/leaves/*.pub)")
	hub := fs.String("hub", "", "run as a worker host's leaf of these hub leaf listeners, HOST:PORT,HOST:PORT")
	fs.StringVar(&t.LeafKey, "leaf-key", "", "this worker's leaf nkey seed (default MOAT_HOME/creds/leaf.nk; make it with `busd leaf-key`)")
	fs.StringVar(&t.Monitor, "monitor", "", "HOST:PORT of the NATS monitoring endpoint (/varz /routez /leafz /jsz); default off")
	drain := fs.Duration("drain", bus.DefaultDrain, "on SIGTERM, how long to wait for moat's daemons to finish, record and answer what they are doing before the bus stops")
	fs.StringVar(&t.StoreDir, "store", "", "JetStream store directory (default MOAT_HOME/bus, or MOAT_HOME/bus/<name> in a cluster)")
	fs.BoolVar(&t.LeaveCluster, "leave-cluster", false, "run alone on a store a cluster left (its streams lowered to one replica, from this copy); without it busd alone refuses such a store")
	procs := daemon.ProcsFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *config != "" {
		if err := loadConfig(fs, *config); err != nil {
			return err
		}
	}
	if err := daemon.SetProcs(*procs); err != nil { // the file's procs too
		return err
	}
	t.Routes, t.Hub = list(*routes), list(*hub)
	log := slog.New(slog.NewTextHandler(stderr, nil))
	h, err := home.FromEnv()
	if err != nil {
		return err
	}
	srv, err := bus.Start(ctx, bus.Config{Home: h, Listen: *listen, Sync: *sync, AuditMaxBytes: *maxBytes, RunsMaxBytes: *runsMaxBytes, Logger: log, Topology: t})
	if err != nil {
		return err
	}
	log.Info("busd ready", "url", srv.ClientURL(), "name", srv.Name(), "cluster", t.Cluster, "leaf_of", *hub, "keys", srv.Keys())
	if strings.HasSuffix(*listen, ":0") {
		fmt.Fprintln(stdout, srv.ClientURL())
	}
	<-ctx.Done()
	log.Info("busd draining: moat's daemons finish what they are doing", "up_to", *drain)
	if left, err := srv.Drain(context.Background(), h, *drain); err != nil || left > 0 {
		log.Warn("busd stops with daemons still connected", "connected", left, "err", err)
	}
	srv.Close()
	log.Info("busd stopped")
	return nil
}

// loadConfig sets every flag named in the TOML file that the command line
// did not set.
func loadConfig(fs *flag.FlagSet, file string) error {
	var values map[string]any
	if _, err := toml.DecodeFile(file, &values); err != nil {
		return fmt.Errorf("config %s: %w", file, err)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for name, v := range values {
		if fs.Lookup(name) == nil || name == "config" {
			return fmt.Errorf("config %s: unknown key %q: the keys are busd's flag names (busd -h)", file, name)
		}
		if given[name] {
			continue
		}
		s := fmt.Sprint(v)
		if l, ok := v.([]any); ok {
			parts := make([]string, len(l))
			for i, x := range l {
				parts[i] = fmt.Sprint(x)
			}
			s = strings.Join(parts, ",")
		}
		if err := fs.Set(name, s); err != nil {
			return fmt.Errorf("config %s: %s: %w", file, name, err)
		}
	}
	return nil
}

// leafKey makes a worker host's leaf key and prints its public half.
func leafKey(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("busd leaf-key", flag.ContinueOnError)
	out := fs.String("out", "", "where to write the seed (default MOAT_HOME/creds/leaf.nk)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		h, err := home.FromEnv()
		if err != nil {
			return err
		}
		*out = bus.LeafKeyFile(h)
	}
	pub, err := bus.NewLeafKey(*out)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, pub)
	return nil
}

func list(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}
