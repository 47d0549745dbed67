// Command busd embeds the NATS server with JetStream that every moat daemon
// talks through. It admits only the keys `moat init` wrote.
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

	"github.com/moatsec/moat/pkg/bus"
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
	fs := flag.NewFlagSet("busd", flag.ContinueOnError)
	listen := fs.String("listen", envOr("MOAT_LISTEN", wire.DefaultListen), "HOST:PORT to serve on (env MOAT_LISTEN); port 0 picks a free one")
	sync := fs.Duration("sync", bus.DefaultSync, "how often JetStream fsyncs: acked events survive power loss after this")
	maxBytes := fs.Int64("audit-max-bytes", bus.DefaultAuditMaxBytes, "bound of the MOAT_AUDIT stream; when full, commands are refused until auditd drains it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	h, err := home.FromEnv()
	if err != nil {
		return err
	}
	srv, err := bus.Start(ctx, bus.Config{Home: h, Listen: *listen, Sync: *sync, AuditMaxBytes: *maxBytes, Logger: log})
	if err != nil {
		return err
	}
	log.Info("busd ready", "url", srv.ClientURL(), "store", h.BusDir(), "keys", srv.Keys(), "stream", wire.AuditStream)
	if strings.HasSuffix(*listen, ":0") {
		fmt.Fprintln(stdout, srv.ClientURL())
	}
	<-ctx.Done()
	log.Info("busd draining")
	srv.Close()
	log.Info("busd stopped")
	return nil
}

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}
