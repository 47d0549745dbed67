// Package bustest starts a real embedded bus for tests: a fresh MOAT_HOME with
// every key, busd's server on a random loopback port, and connections as any role.
package bustest

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/moatsec/moat/pkg/bus"
	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/home"
	"github.com/nats-io/nats.go"
)

// Stack is a running test bus.
type Stack struct {
	Home   home.Home
	URL    string
	Server *bus.Server
}

// Start initializes a MOAT_HOME under t.TempDir and runs the bus on a random
// port until the test ends.
func Start(t testing.TB) *Stack {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h, err := home.New(filepath.Join(dir, "moat"))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Init(false); err != nil {
		t.Fatal(err)
	}
	return StartAt(t, h)
}

// StartAt runs the bus on an existing MOAT_HOME.
func StartAt(t testing.TB, h home.Home) *Stack {
	t.Helper()
	srv, err := bus.Start(context.Background(), bus.Config{Home: h, Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("start bus: %v", err)
	}
	t.Cleanup(srv.Close)
	return &Stack{Home: h, URL: srv.ClientURL(), Server: srv}
}

// Options are client options for role on this bus.
func (s *Stack) Options(role string) client.Options {
	return client.Options{URL: s.URL, Role: role}.Fill(s.Home)
}

// Client connects as role; the connection closes when the test ends.
func (s *Stack) Client(t testing.TB, role string) *client.Client {
	t.Helper()
	c, err := client.Dial(context.Background(), s.Options(role))
	if err != nil {
		t.Fatalf("dial as %s: %v", role, err)
	}
	t.Cleanup(c.Close)
	return c
}

// Conn is Client(t, role).Conn().
func (s *Stack) Conn(t testing.TB, role string) *nats.Conn { return s.Client(t, role).Conn() }
