// Package bus embeds the NATS server moat's daemons talk through: JetStream
// with a file store under MOAT_HOME/bus, nkey authentication with one
// least-privilege user per component (see [Permissions]), and the MOAT_AUDIT
// stream that holds audit events until auditd has made them durable.
//
// busd is the only moat process that listens on a port.
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/moatsec/moat/pkg/home"
	"github.com/nats-io/nats-server/v2/server"
)

// Config says how to run the bus.
type Config struct {
	Home   home.Home
	Listen string // host:port; port 0 picks a free one
	// Sync is how often JetStream fsyncs its store. An event acked to a
	// publisher survives any process crash at once, and power loss after Sync.
	Sync time.Duration
	// AuditMaxBytes bounds MOAT_AUDIT; when it is full, publishes fail and
	// commands are refused until auditd catches up (nothing is dropped).
	AuditMaxBytes int64
	// RunsMaxBytes bounds MOAT_RUNS; when it is full, new run claims are
	// refused, and with them the runs (503, nothing runs).
	RunsMaxBytes int64
	// MaxPayload is the largest message the bus carries (run results hold output).
	MaxPayload int32
	Logger     *slog.Logger
	// Topology places the server in a cluster, as a hub or as a worker's
	// leaf (cluster.go); the zero value is one server alone.
	Topology Topology
}

// Defaults for Config's zero fields.
const (
	DefaultSync          = time.Second
	DefaultAuditMaxBytes = 1 << 30
	DefaultMaxPayload    = 8 << 20
)

// Server is a running bus.
type Server struct {
	ns    *server.Server
	log   *slog.Logger
	keys  int
	recon *reconciler // streams and moat.bus.servers (reconcile.go)
}

// Start runs the bus and returns once it accepts connections and the audit
// stream exists. It refuses to start without the keys `moat init` writes.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	keys, err := cfg.Home.PublicKeys()
	if err != nil {
		return nil, err
	}
	host, port, err := splitListen(cfg.Listen)
	if err != nil {
		return nil, err
	}
	opts := &server.Options{
		ServerName:          "moat-bus",
		Host:                host,
		Port:                port,
		NoSigs:              true, // busd handles signals itself
		JetStream:           true,
		StoreDir:            cfg.Home.BusDir(),
		SyncInterval:        orDuration(cfg.Sync, DefaultSync),
		MaxPayload:          orInt32(cfg.MaxPayload, DefaultMaxPayload),
		LameDuckDuration:    time.Second,
		LameDuckGracePeriod: 250 * time.Millisecond,
		HTTPPort:            0,
	}
	for _, role := range home.Roles {
		opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: keys[role], Permissions: Permissions(role), AllowedConnectionTypes: localConnections})
	}
	if err := cfg.Topology.apply(opts, cfg.Home); err != nil {
		return nil, err
	}
	if err := checkAloneStore(opts.StoreDir, cfg.Topology, cfg.Logger); err != nil {
		return nil, err
	}
	useKeyAuth(opts, keys) // auth.go: the keys above, and a private inbox per caller connection
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("configure bus: %w", err)
	}
	ns.SetLoggerV2(&logger{cfg.Logger}, false, false, false)
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("bus did not accept connections within 10s: is the listen address in use?")
	}
	s := &Server{ns: ns, log: cfg.Logger, keys: len(keys)}
	if s.recon, err = startStreams(ctx, ns, cfg.Home, cfg.Topology, StreamBounds{Audit: orInt64(cfg.AuditMaxBytes, DefaultAuditMaxBytes), Runs: orInt64(cfg.RunsMaxBytes, DefaultRunsMaxBytes)}, cfg.Logger); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// ClientURL is the URL clients connect to.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// Keys is how many users the bus admits.
func (s *Server) Keys() int { return s.keys }

// Close drains the bus: it stops accepting connections, lets clients finish
// and shuts JetStream down cleanly (its store is flushed).
func (s *Server) Close() {
	s.recon.stop()
	s.ns.LameDuckShutdown()
	s.ns.WaitForShutdown()
}

func splitListen(listen string) (string, int, error) {
	host, p, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, fmt.Errorf("listen address %q: %w; use HOST:PORT such as 127.0.0.1:4222", listen, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("listen address %q: bad port; use 0 to pick a free one", listen)
	}
	if port == 0 {
		port = -1 // nats-server takes 0 to mean 4222
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return host, port, nil
}

func orDuration(v, d time.Duration) time.Duration {
	if v == 0 {
		return d
	}
	return v
}

func orInt32(v, d int32) int32 {
	if v == 0 {
		return d
	}
	return v
}

func orInt64(v, d int64) int64 {
	if v == 0 {
		return d
	}
	return v
}
