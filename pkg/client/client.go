// Package client is the Go client of moat's bus: how the CLI, the daemons and
// benchd connect with their key and call the services. Every service call has a
// deadline; a missing, slow or garbled answer is an error with a wire code,
// never a silent success.
package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// Options say where the bus is and which key to use.
type Options struct {
	URL   string // default MOAT_BUS or nats://127.0.0.1:4222
	Creds string // nkey seed file; default MOAT_CREDS or MOAT_HOME/creds/<Role>.nk
	Role  string // the component connecting; picks the default creds and the inbox prefix
	Name  string // connection name shown by the bus; default Role
	// Wait keeps retrying the first connection this long (daemons started
	// alongside busd); zero tries once.
	Wait time.Duration
	// Timeout is the default deadline of a call whose context has none.
	Timeout time.Duration
	// Logger, when set, hears the connection's async errors (a permissions
	// violation, a slow consumer); they also stay on the connection for LastError.
	Logger *slog.Logger
}

// DefaultTimeout bounds a call when neither its context nor Options set one.
const DefaultTimeout = 5 * time.Second

// Fill sets URL and Creds from the environment and h where they are empty.
func (o Options) Fill(h home.Home) Options {
	if o.URL == "" {
		o.URL = os.Getenv(home.EnvBus)
	}
	if o.URL == "" {
		o.URL = wire.DefaultBusURL
	}
	if o.Creds == "" {
		o.Creds = os.Getenv(home.EnvCreds)
	}
	if o.Creds == "" {
		o.Creds = h.Creds(o.Role)
	}
	if o.Name == "" {
		o.Name = o.Role
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	return o
}

// Client is a connection to the bus.
type Client struct {
	nc      *nats.Conn
	timeout time.Duration
	mux     mux
	kept    keptProfiles // profile hashes a policyd keeps (check.go)
	role    string       // the component connected (Options.Role)
}

// Dial connects with the key in o.Creds. Call o.Fill first for defaults.
func Dial(ctx context.Context, o Options) (*Client, error) {
	auth, err := nats.NkeyOptionFromSeed(o.Creds)
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w; if your stack runs with another MOAT_HOME, export MOAT_HOME=<that directory>; otherwise run `moat init` (or pass --creds)", o.Creds, err)
	}
	role := o.Role
	if role == "" {
		role = strings.TrimSuffix(filepath.Base(o.Creds), ".nk")
	}
	opts := []nats.Option{auth, nats.Name(o.Name), nats.MaxReconnects(-1),
		nats.ReconnectWait(100 * time.Millisecond), nats.Timeout(2 * time.Second),
		nats.ReconnectHandler(markBack), nats.ClosedHandler(forgetBack),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if o.Logger != nil {
				subject := ""
				if sub != nil {
					subject = sub.Subject
				}
				o.Logger.Warn("bus error", "subject", subject, "err", err)
			}
		})}
	switch {
	case slices.Contains(wire.CallerRoles, role):
		// An inbox of this connection's own: busd lets no other connection,
		// even with the same key, read what comes there (wire.CallerRoles).
		id := wire.NewToken() // not a NUID: one inbox seen gives away no other
		opts = append(opts, nats.Token(id), nats.CustomInboxPrefix(wire.CallerInbox(role, id)))
	case slices.Contains(home.Roles, role):
		opts = append(opts, nats.CustomInboxPrefix(wire.InboxPrefix(role)))
	}
	deadline := time.Now().Add(o.Wait)
	for {
		nc, err := nats.Connect(o.URL, opts...)
		if err == nil {
			onLeaf(nc)
			timeout := o.Timeout
			if timeout == 0 {
				timeout = DefaultTimeout
			}
			return &Client{nc: nc, timeout: timeout, role: role}, nil
		}
		if errors.Is(err, nats.ErrAuthorization) || strings.Contains(err.Error(), "Authorization Violation") {
			return nil, fmt.Errorf("the bus at %s refused key %s: it was not written by the `moat init` this bus uses", o.URL, o.Creds)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("cannot reach the bus at %s: %w; is busd running? (scripts/up starts the stack)", o.URL, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// FromConn wraps a connection a daemon already has, for calling other
// services with timeout as the default deadline.
func FromConn(nc *nats.Conn, timeout time.Duration) *Client {
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	return &Client{nc: nc, timeout: timeout}
}

// Conn is the underlying NATS connection.
func (c *Client) Conn() *nats.Conn { return c.nc }

// Close drains pending replies and closes the connection.
func (c *Client) Close() { c.nc.Close() }

// Call sends in to subject as msgpack with the request and session headers and
// decodes the answer into out. Service errors come back as *wire.Error; no
// responder is 503 and a missing answer is 408. A call that meets no
// responder during or shortly after its connection came back
// (RestartGrace) is sent again until its deadline: the service may not be
// back yet.
func (c *Client) Call(ctx context.Context, subject, requestID, sessionID string, in, out any) error {
	body, err := wire.Encode(wire.Msgpack, in)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	msg := nats.NewMsg(subject)
	msg.Data = body
	msg.Header.Set(wire.HeaderContentType, wire.ContentMsgpack)
	if requestID != "" {
		msg.Header.Set(wire.HeaderRequestID, requestID)
	}
	if sessionID != "" {
		msg.Header.Set(wire.HeaderSessionID, sessionID)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	resp, err := c.request(ctx, msg)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return wire.Errorf(wire.CodeUnavailable, "nothing answers %s: start the service that serves it (moat status shows what is missing)", subject)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		return wire.Errorf(wire.CodeTimeout, "no answer on %s in time", subject)
	case err != nil:
		return wire.Errorf(wire.CodeUnavailable, "request %s: %v", subject, err)
	}
	if code := resp.Header.Get(wire.HeaderErrorCode); code != "" {
		return &wire.Error{Code: wire.ParseCode(code), Message: resp.Header.Get(wire.HeaderError)}
	}
	if err := c.decodeReply(resp, out); err != nil {
		return wire.Errorf(wire.CodeInternal, "garbled answer on %s: %v", subject, err)
	}
	return nil
}

// request is RequestMsgWithContext, sending msg again while it meets no
// responder during or shortly after (RestartGrace) its connection coming
// back: the service is not back yet after a restart of the bus, and a
// request nobody received is safe to send again.
func (c *Client) request(ctx context.Context, msg *nats.Msg) (*nats.Msg, error) {
	reconnects := c.nc.Stats().Reconnects
	for {
		resp, err := c.nc.RequestMsgWithContext(ctx, msg)
		if !errors.Is(err, nats.ErrNoResponders) || (c.nc.Stats().Reconnects == reconnects && !cameBack(c.nc)) {
			return resp, err
		}
		t := time.NewTimer(resumePoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// decodeReply reads an answer into out. Answers are bounded by the bus's
// max payload, not by the request limit: a service may answer more than a
// request may carry.
func (c *Client) decodeReply(m *nats.Msg, out any) error {
	return wire.DecodeLimit(wire.DetectFormat(m.Header.Get(wire.HeaderContentType), m.Data), m.Data, out, int(c.nc.MaxPayload()))
}
