package bus_test

import (
	"errors"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/home"
	"github.com/nats-io/nats.go"
)

// rawConn connects with role's key the way the NATS CLI does: no inbox id.
func rawConn(t *testing.T, s *bustest.Stack, role string, extra ...nats.Option) (*nats.Conn, error) {
	t.Helper()
	auth, err := nats.NkeyOptionFromSeed(s.Home.Creds(role))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(s.URL, append([]nats.Option{auth}, extra...)...)
	if err == nil {
		t.Cleanup(nc.Close)
	}
	return nc, err
}

func subErr(t *testing.T, nc *nats.Conn, subject string) error {
	t.Helper()
	if _, err := nc.Subscribe(subject, func(*nats.Msg) {}); err != nil {
		return err
	}
	if err := nc.Flush(); err != nil {
		return err
	}
	time.Sleep(20 * time.Millisecond) // the violation comes asynchronously
	return nc.LastError()
}

// TestCallerInboxesArePrivate holds two connections with the same client
// key: each reads answers (and run output) only in its own inbox, so one
// agent cannot read another's — issue 10: any client key could subscribe to
// every run's output.
func TestCallerInboxesArePrivate(t *testing.T) {
	s := bustest.Start(t)
	a := s.Client(t, home.RoleClient).Conn()
	own := a.Opts.InboxPrefix + ".>"
	for _, tc := range []struct {
		what, subject string
		allowed       bool
	}{
		{"every client's inbox", "_INBOX_client.>", false},
		{"every client's inbox, by wildcards", "_INBOX_client.*.*", false},
		{"the other connection's inbox", own, false},
	} {
		b := s.Client(t, home.RoleClient).Conn()
		if err := subErr(t, b, tc.subject); !errors.Is(err, nats.ErrPermissionViolation) {
			t.Errorf("a second client connection subscribing to %s (%s): %v, want a permissions violation", tc.what, tc.subject, err)
		}
	}
	if err := subErr(t, a, own); err != nil {
		t.Errorf("a connection reading its own inbox: %v", err)
	}

	// The NATS CLI claims no inbox: it gets the standard _INBOX., never a caller's.
	cli, err := rawConn(t, s, home.RoleClient)
	if err != nil {
		t.Fatal(err)
	}
	if err := subErr(t, cli, "_INBOX.x.>"); err != nil {
		t.Errorf("the NATS CLI's inbox: %v", err)
	}
	cli2, _ := rawConn(t, s, home.RoleClient)
	if err := subErr(t, cli2, own); !errors.Is(err, nats.ErrPermissionViolation) {
		t.Errorf("a CLI connection reading a client's inbox: %v, want a permissions violation", err)
	}

	// A malformed inbox id, or one claimed with a daemon's key, is refused.
	if _, err := rawConn(t, s, home.RoleClient, nats.Token("short")); err == nil {
		t.Error("a malformed inbox id was admitted")
	}
	if _, err := rawConn(t, s, home.RoleSandboxd, nats.Token("0123456789012345678901")); err == nil {
		t.Error("a daemon claiming a caller's inbox was admitted")
	}
	// A forged signature is refused as before.
	if _, err := nats.Connect(s.URL, nats.Nkey(mustPub(t, s), func([]byte) ([]byte, error) { return make([]byte, 64), nil })); err == nil {
		t.Error("a connection with a forged signature was admitted")
	}
}

func mustPub(t *testing.T, s *bustest.Stack) string {
	t.Helper()
	keys, err := s.Home.PublicKeys()
	if err != nil {
		t.Fatal(err)
	}
	return keys[home.RoleClient]
}
