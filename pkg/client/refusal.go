package client

import (
	"context"

	"github.com/moatsec/moat/pkg/wire"
)

// Explain completes a policy refusal with a profile whose policy allows the
// command: it asks policyd, as a dry run, about each enabled profile in
// profiled's order (the built-ins from narrowest to widest, then custom
// ones), skipping the one that refused, and names the first that allows.
// within limits the profiles considered (nil: all); the caller decides
// whether to grant one. Refusals of other layers, and those that say the
// stack could not judge, are left as they are.
func (c *Client) Explain(ctx context.Context, r *wire.Refusal, req wire.CheckRequest, within func(name string) bool) {
	if r == nil || r.Layer != wire.LayerPolicy {
		return
	}
	switch r.Rule {
	case wire.ReasonPolicyUnavailable, wire.ReasonPolicyTimeout, wire.ReasonPolicyError, wire.ReasonAuditUnavailable:
		return
	}
	l, err := c.Profiles(ctx)
	if err != nil {
		return
	}
	refused := req.Profile.Name
	if req.Profile.Resolved != nil {
		refused = req.Profile.Resolved.Name
	}
	if refused == "" {
		refused = l.Default
	}
	for _, p := range l.Profiles {
		if !p.Enabled || p.Name == refused || (within != nil && !within(p.Name)) {
			continue
		}
		q := req
		// A probe is not the caller's work: recorded by policyd, but outside its session.
		q.RequestID, q.SessionID, q.Profile, q.Approval = "", "", wire.RefName(p.Name), ""
		if d := c.Check(ctx, &q); d.Verdict == wire.VerdictAllow {
			r.Allow.Profile = p.Name
			return
		}
	}
}
