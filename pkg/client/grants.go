package client

import (
	"context"

	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// Grants lists the grants in force (approver and admin keys only).
func (c *Client) Grants(ctx context.Context) ([]wire.Grant, error) {
	var l wire.GrantList
	if err := c.approverCall(ctx, wire.SubjectGrants, struct{}{}, &l); err != nil {
		return nil, err
	}
	return l.Grants, nil
}

// Revoke ends a grant at once (approver and admin keys only).
func (c *Client) Revoke(ctx context.Context, r *wire.RevokeRequest) (*wire.RevokeAck, error) {
	var ack wire.RevokeAck
	if err := c.approverCall(ctx, wire.SubjectRevoke, r, &ack); err != nil {
		return nil, err
	}
	return &ack, nil
}

// approverCall is Call for subjects only approver and admin keys may
// publish: a key the bus refuses is told so at once (403), not left to time out.
func (c *Client) approverCall(ctx context.Context, subject string, in, out any) error {
	body, err := wire.Encode(wire.Msgpack, in)
	if err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	reply, msgs, done, err := c.replies(nil)
	if err != nil {
		return err
	}
	defer done()
	msg := nats.NewMsg(subject)
	msg.Reply, msg.Data = reply, body
	msg.Header.Set(wire.HeaderContentType, wire.ContentMsgpack)
	if err := c.nc.PublishMsg(msg); err != nil {
		return wire.Errorf(wire.CodeUnavailable, "cannot reach the bus: %v", err)
	}
	if err := c.nc.FlushWithContext(ctx); err == nil && refused(c.nc.LastError(), subject) {
		return wire.Errorf(wire.CodeDenied, "this key may not list or revoke grants: use the approver key (--creds MOAT_HOME/creds/approver.nk, the default of moat grants and moat revoke)")
	}
	for {
		m := msgs.next()
		if m == nil {
			select {
			case <-msgs.ready:
				continue
			case <-ctx.Done():
				return wire.Errorf(wire.CodeTimeout, "no answer on %s in time", subject)
			}
		}
		if m.Header.Get("Status") == "503" {
			return wire.Errorf(wire.CodeUnavailable, "nothing answers %s: start policyd (moat status shows what is missing)", subject)
		}
		if code := m.Header.Get(wire.HeaderErrorCode); code != "" {
			return &wire.Error{Code: wire.ParseCode(code), Message: m.Header.Get(wire.HeaderError)}
		}
		if err := c.decodeReply(m, out); err != nil {
			return wire.Errorf(wire.CodeInternal, "garbled answer on %s: %v", subject, err)
		}
		return nil
	}
}
