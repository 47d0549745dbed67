package daemon_test

import (
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/daemon"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/service"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/moatsec/moat/test/testbin"
)

// fake is a daemon with a real service on the bus, so $SRV.PING says when
// it is up, and a goroutine of its own that must be joined.
type fake struct {
	svc      *service.Service
	stops    atomic.Int32
	loopDone atomic.Bool // set by the Env.Go goroutine as it returns
}

func (f *fake) ID() string { return f.svc.ID() }
func (f *fake) Stop() error {
	f.stops.Add(1)
	return f.svc.Stop()
}

// spec runs f as profiled.
func (f *fake) spec() daemon.Spec {
	return daemon.Spec{
		Role: home.RoleProfiled,
		Start: func(_ context.Context, e *daemon.Env) (daemon.Daemon, error) {
			svc, err := service.New(e.Conn(), service.Config{Name: wire.ServiceProfiled, Version: "0.0.1", Logger: e.Log})
			if err != nil {
				return nil, err
			}
			f.svc = svc
			e.Go(func(ctx context.Context) {
				<-ctx.Done()
				time.Sleep(50 * time.Millisecond) // a slow exit: Run must still wait for it
				f.loopDone.Store(true)
			})
			e.Ready("extra", "yes")
			return f, nil
		},
	}
}

type result struct {
	err error
	log string
}

// run starts spec on s's bus and returns once the daemon answers pings.
func run(t *testing.T, ctx context.Context, s *bustest.Stack, spec daemon.Spec) <-chan result {
	t.Helper()
	t.Setenv(home.EnvHome, s.Home.Dir)
	out := &testbin.Output{}
	done := make(chan result, 1)
	go func() {
		err := daemon.Run(ctx, spec, []string{"--bus", s.URL}, out)
		done <- result{err, out.String()}
	}()
	admin := s.Client(t, home.RoleAdmin)
	testbin.Eventually(t, 30*time.Second, "the daemon answers pings", func() error {
		select {
		case r := <-done:
			t.Fatalf("Run returned before it was up: %v\n%s", r.err, r.log)
		default:
		}
		_, err := admin.Conn().Request("$SRV.PING."+wire.ServiceProfiled, nil, time.Second)
		return err
	})
	return done
}

func wait(t *testing.T, done <-chan result) result {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return after the stop")
		return result{}
	}
}

func (f *fake) checkStopped(t *testing.T, r result) {
	t.Helper()
	if r.err != nil {
		t.Fatalf("Run: %v\n%s", r.err, r.log)
	}
	if n := f.stops.Load(); n != 1 {
		t.Errorf("Stop called %d times, want once", n)
	}
	if !f.loopDone.Load() {
		t.Error("Run returned before the daemon's goroutine did")
	}
	for _, want := range []string{`msg="profiled ready" id=` + f.svc.ID() + " bus=", "extra=yes", `msg="profiled stopping"`} {
		if !strings.Contains(r.log, want) {
			t.Errorf("log lacks %q:\n%s", want, r.log)
		}
	}
}

// TestCancelStops: a cancelled context (SIGTERM in Main) stops the daemon,
// joins its goroutine and leaves the bus.
func TestCancelStops(t *testing.T) {
	s := bustest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := &fake{}
	done := run(t, ctx, s, f.spec())
	cancel()
	f.checkStopped(t, wait(t, done))
	if _, err := s.Conn(t, home.RoleAdmin).Request("$SRV.PING."+wire.ServiceProfiled, nil, 2*time.Second); err == nil {
		t.Error("the stopped daemon still answers pings")
	}
}

// TestBusStoppingStops: busd's lame duck (which tells each role by name on
// wire.SubjectBusStopping, then waits for its connections to leave) stops
// the daemon as SIGTERM would, and busd sees it gone.
func TestBusStoppingStops(t *testing.T) {
	s := bustest.Start(t)
	f := &fake{}
	done := run(t, context.Background(), s, f.spec())
	left, err := s.Server.Drain(context.Background(), s.Home, 30*time.Second)
	if err != nil || left != 0 {
		t.Fatalf("drain: %d daemons left, err %v", left, err)
	}
	f.checkStopped(t, wait(t, done))
}

// TestBusStoppingOtherRole: a stopping message for another role leaves the
// daemon running; its own name then stops it.
func TestBusStoppingOtherRole(t *testing.T) {
	s := bustest.Start(t)
	f := &fake{}
	done := run(t, context.Background(), s, f.spec())
	admin := s.Conn(t, home.RoleAdmin)
	if err := admin.Publish(wire.SubjectBusStopping, []byte(home.RolePolicyd)); err != nil {
		t.Fatal(err)
	}
	// The daemon's subscription sees messages in order: once a ping sent
	// after the message is answered, a stop would have begun.
	if err := admin.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Request("$SRV.PING."+wire.ServiceProfiled, nil, 5*time.Second); err != nil {
		t.Fatalf("the daemon stopped for policyd's message: %v", err)
	}
	select {
	case r := <-done:
		t.Fatalf("Run returned for another role's stop: %v\n%s", r.err, r.log)
	default:
	}
	if n := f.stops.Load(); n != 0 {
		t.Fatalf("Stop called %d times for another role's message", n)
	}
	if err := admin.Publish(wire.SubjectBusStopping, []byte(home.RoleProfiled)); err != nil {
		t.Fatal(err)
	}
	f.checkStopped(t, wait(t, done))
}

// TestDialFailure: a bus that refuses the key, or no key at all, ends Run
// at once with an error that says what to do; nothing is started.
func TestDialFailure(t *testing.T) {
	s := bustest.Start(t)
	other := bustest.Start(t) // another `moat init`: its bus knows none of s's keys
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"foreign bus", []string{"--bus", other.URL}, "was not written by the `moat init` this bus uses"},
		{"no key", []string{"--bus", s.URL, "--creds", filepath.Join(t.TempDir(), "none.nk")}, "run `moat init`"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(home.EnvHome, s.Home.Dir)
			started := false
			spec := daemon.Spec{Role: home.RoleProfiled, Start: func(context.Context, *daemon.Env) (daemon.Daemon, error) {
				started = true
				return nil, errors.New("unreachable")
			}}
			err := daemon.Run(context.Background(), spec, tc.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one saying %q", err, tc.want)
			}
			if started {
				t.Error("Start ran without a bus")
			}
			if code := daemon.ExitCode(home.RoleProfiled, err, io.Discard); code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
		})
	}
}

// TestPrepareFailsBeforeDial: what Prepare refuses ends Run without waiting
// for a bus (there is none at this address).
func TestPrepareFailsBeforeDial(t *testing.T) {
	s := bustest.Start(t)
	t.Setenv(home.EnvHome, s.Home.Dir)
	broken := errors.New("profiles.toml: line 3: fix it")
	spec := daemon.Spec{Role: home.RoleProfiled,
		Prepare: func(*daemon.Env) error { return broken },
		Start: func(context.Context, *daemon.Env) (daemon.Daemon, error) {
			t.Error("Start ran after Prepare failed")
			return nil, broken
		}}
	// A closed port: a dial would retry for client.DaemonWait.
	err := daemon.Run(context.Background(), spec, []string{"--bus", "nats://127.0.0.1:1"}, io.Discard)
	if !errors.Is(err, broken) {
		t.Fatalf("err = %v, want Prepare's", err)
	}
}

// TestStartFailureJoins: a Start that fails after starting a goroutine
// gets it cancelled and joined before Run returns.
func TestStartFailureJoins(t *testing.T) {
	s := bustest.Start(t)
	t.Setenv(home.EnvHome, s.Home.Dir)
	var joined atomic.Bool
	spec := daemon.Spec{Role: home.RoleProfiled,
		Start: func(_ context.Context, e *daemon.Env) (daemon.Daemon, error) {
			e.Go(func(ctx context.Context) { <-ctx.Done(); joined.Store(true) })
			return nil, errors.New("bucket missing")
		}}
	err := daemon.Run(context.Background(), spec, []string{"--bus", s.URL}, io.Discard)
	if err == nil || err.Error() != "bucket missing" {
		t.Fatalf("err = %v, want Start's", err)
	}
	if !joined.Load() {
		t.Error("Run returned before the goroutine Start began")
	}
}

// TestExitCodes: -h is no failure, bad flags and stray arguments are usage
// errors (2), the rest 1 with the role in front.
func TestExitCodes(t *testing.T) {
	t.Setenv(home.EnvHome, t.TempDir())
	spec := daemon.Spec{Role: home.RoleProfiled, Flags: func(fs *flag.FlagSet) { fs.Bool("allow-trusted", false, "") }}
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"-h"}, 0, "-allow-trusted"},
		{[]string{"--no-such-flag"}, 2, "flag provided but not defined"},
		{[]string{"verfy"}, 2, "takes no arguments"},
	} {
		var out strings.Builder
		err := daemon.Run(context.Background(), spec, tc.args, &out)
		if code := daemon.ExitCode(home.RoleProfiled, err, &out); code != tc.code || !strings.Contains(out.String(), tc.out) {
			t.Errorf("%q: exit %d, want %d; output:\n%s", tc.args, code, tc.code, out.String())
		}
	}
	var out strings.Builder
	if code := daemon.ExitCode(home.RoleProfiled, os.ErrNotExist, &out); code != 1 || out.String() != "profiled: file does not exist\n" {
		t.Errorf("exit %d, output %q", code, out.String())
	}
}

// TestSIGHUPReloads: SIGHUP calls the daemon's Reload, and the daemon goes
// on serving.
func TestSIGHUPReloads(t *testing.T) {
	s := bustest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := &fake{}
	spec := f.spec()
	reloaded := make(chan struct{}, 1)
	spec.Reload = func(e *daemon.Env) {
		e.Log.Info("profiles reloaded")
		reloaded <- struct{}{}
	}
	done := run(t, ctx, s, spec)
	// The daemon took SIGHUP before it said it was ready.
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reloaded:
	case r := <-done:
		t.Fatalf("Run returned on SIGHUP: %v\n%s", r.err, r.log)
	case <-time.After(60 * time.Second):
		t.Fatal("no reload within a minute of SIGHUP")
	}
	if _, err := s.Conn(t, home.RoleAdmin).Request("$SRV.PING."+wire.ServiceProfiled, nil, 5*time.Second); err != nil {
		t.Fatalf("the daemon stopped serving after a reload: %v", err)
	}
	cancel()
	f.checkStopped(t, wait(t, done))
}
