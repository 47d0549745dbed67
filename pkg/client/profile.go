package client

import (
	"context"

	"github.com/moatsec/moat/pkg/wire"
)

// Resolve asks profiled to turn req into a concrete profile. A resolution
// whose answer the bus lost in a restart is asked for again (resumer).
func (c *Client) Resolve(ctx context.Context, req *wire.ResolveRequest) (*wire.Profile, error) {
	if req.RequestID == "" {
		req.RequestID = wire.NewID()
	}
	var p wire.Profile
	if err := c.callResumable(ctx, wire.SubjectResolve, wire.SubjectResolveResume, req.RequestID, req.SessionID, req, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Profiles lists the profiles profiled offers.
func (c *Client) Profiles(ctx context.Context) (*wire.ProfileList, error) {
	var l wire.ProfileList
	if err := c.Call(ctx, wire.SubjectProfileList, "", "", struct{}{}, &l); err != nil {
		return nil, err
	}
	return &l, nil
}
