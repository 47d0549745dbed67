// Package daemon is the start and the stop every moat daemon on the bus
// shares (profiled, policyd, sandboxd, auditd), so that each
// cmd/<daemon>/main.go holds only its own flags and a Start:
//
//	flags → MOAT_HOME → sanitizer → Prepare → dial the bus (waiting for busd)
//	→ obey busd's stopping message → Start → "<role> ready"
//	→ wait for SIGINT, SIGTERM or busd → "<role> stopping" → Stop
//
// Invariants:
//   - The daemon stops for SIGINT, SIGTERM, a cancelled context (tests), or
//     wire.SubjectBusStopping naming its role (or empty): busd's lame duck
//     waits for it, so every way out runs the daemon's own Stop, which
//     finishes or cancels its work, records it and answers its callers.
//   - Run returns only after Stop returned and every goroutine started with
//     Env.Go has returned; the bus connection closes after both.
//   - What needs no bus (keys, config and rules files) is checked before the
//     bus is dialled, so a broken file fails at once instead of after
//     waiting up to client.DaemonWait for busd.
//   - Log lines keep their words: `<role> ready` with id and bus first, then
//     the daemon's own fields; `<role> stopping`. Tests and operators read them.
//   - Exit status (Main): 0 after a stop, 0 for -h, 2 for bad flags, 1 for any
//     other failure, printed as `<role>: <error>`.
package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/moatsec/moat/pkg/audit"
	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/home"
	"github.com/nats-io/nats.go"
)

// Daemon is a started daemon: its service's instance id and its stop.
// A daemon that can end on its own (auditd when its drain fails) also has
// Stopped() <-chan error; Run then returns that error.
type Daemon interface {
	ID() string
	Stop() error
}

// Spec is one daemon's part of the skeleton.
type Spec struct {
	// Role is the daemon's component name (home.RoleProfiled, …): its key,
	// its log lines, its errors and the busd stopping message it obeys.
	Role string
	// Flags registers the daemon's own flags; --bus, --creds and
	// --call-timeout and --procs are there already. Optional.
	Flags func(fs *flag.FlagSet)
	// Prepare does what needs no bus, after the flags are parsed and before
	// the bus is dialled (Env.Client is nil): load files, check the host.
	// Optional.
	Prepare func(e *Env) error
	// Start starts the daemon on e.Client's connection. ctx ends when the
	// daemon is to stop; use it for start-up calls, keep it for nothing.
	Start func(ctx context.Context, e *Env) (Daemon, error)
	// Reload, when set, is called on SIGHUP (and logs what it did); without
	// it SIGHUP is left to its default.
	Reload func(e *Env)
}

// Env is what Prepare and Start get.
type Env struct {
	Home      home.Home
	Log       *slog.Logger
	Sanitizer *audit.Sanitizer
	Bus       client.Options  // filled; Bus.URL is where the daemon connects
	Client    *client.Client  // nil in Prepare
	ready     []any           // the daemon's own fields on its ready line
	ctx       context.Context // ends when the daemon stops (for Go)
	wg        sync.WaitGroup
}

// Conn is the daemon's bus connection.
func (e *Env) Conn() *nats.Conn { return e.Client.Conn() }

// Ready adds key-value pairs to the daemon's ready line, after id and bus.
func (e *Env) Ready(kv ...any) { e.ready = append(e.ready, kv...) }

// Go runs f in a goroutine the daemon owns (call it from Start): f's
// context ends when the daemon stops, and Run waits for f to return before
// it closes the bus connection.
func (e *Env) Go(f func(ctx context.Context)) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		f(e.ctx)
	}()
}

// Main runs the daemon of spec with the process's arguments until SIGINT or
// SIGTERM (or busd) stops it, then exits with its status.
func Main(spec Spec) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Run(ctx, spec, os.Args[1:], os.Stderr)
	stop()
	os.Exit(ExitCode(spec.Role, err, os.Stderr))
}

// ExitCode is the process status for Run's error, which it prints to
// stderr as `<role>: <error>`: 0 for none or -h, 2 for bad flags (the flag
// package said why), 1 otherwise.
func ExitCode(role string, err error, stderr io.Writer) int {
	var usage usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &usage):
		return 2
	}
	fmt.Fprintf(stderr, "%s: %v\n", role, err)
	return 1
}

// usageError is a flag the flag package refused (and explained).
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

// Run runs the daemon of spec with args, logging to stderr, until ctx ends
// or busd says this role is to stop; then it stops the daemon, waits for
// what it owns and returns. An error means the daemon did not start, its
// Stop failed, or it stopped on its own.
func Run(ctx context.Context, spec Spec, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet(spec.Role, flag.ContinueOnError)
	fs.SetOutput(stderr)
	opts := client.Flags(fs, spec.Role)
	procs := ProcsFlag(fs)
	if spec.Flags != nil {
		spec.Flags(fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if err := SetProcs(*procs); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", spec.Role, err)
		return usageError{err}
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s takes no arguments, only flags: %q\n", spec.Role, fs.Args())
		fs.Usage()
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	e := &Env{Log: slog.New(slog.NewTextHandler(stderr, nil))}
	// SIGHUP is taken from the start, so one sent early is a reload (kept
	// until the daemon is ready), never the default end of the process.
	var hup chan os.Signal
	if spec.Reload != nil {
		hup = make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}
	h, err := home.FromEnv()
	if err != nil {
		return err
	}
	e.Home = h
	if e.Sanitizer, err = audit.LoadSanitizer(h.HMACKey()); err != nil {
		return err
	}
	if spec.Prepare != nil {
		if err := spec.Prepare(e); err != nil {
			return err
		}
	}
	e.Bus = opts(h)
	e.Bus.Wait, e.Bus.Logger = client.DaemonWait, e.Log
	if e.Client, err = client.Dial(ctx, e.Bus); err != nil {
		return err
	}
	defer e.Client.Close()
	ctx, stop := context.WithCancel(ctx)
	e.ctx = ctx
	defer func() {
		stop()
		e.wg.Wait() // before the connection closes under them
	}()
	// busd stopping: stop as on SIGTERM, while busd waits for this daemon.
	if err := e.Client.OnBusStopping(stop); err != nil {
		return fmt.Errorf("listen for busd stopping: %w", err)
	}
	d, err := spec.Start(ctx, e)
	if err != nil {
		return err
	}
	e.Log.Info(spec.Role+" ready", append([]any{"id", d.ID(), "bus", e.Bus.URL}, e.ready...)...)
	return e.serve(ctx, spec, d, hup)
}

// serve waits for the daemon's end, then stops it and joins what it owns.
func (e *Env) serve(ctx context.Context, spec Spec, d Daemon, hup <-chan os.Signal) error {
	var stopped <-chan error
	if s, ok := d.(interface{ Stopped() <-chan error }); ok {
		stopped = s.Stopped()
	}
	for {
		select {
		case <-hup:
			spec.Reload(e)
		case err := <-stopped:
			d.Stop()
			return err
		case <-ctx.Done():
			e.Log.Info(spec.Role + " stopping")
			return d.Stop()
		}
	}
}
