package client

import (
	"context"

	"github.com/moatsec/moat/pkg/wire"
)

// AuditQuery asks auditd for a page of events.
func (c *Client) AuditQuery(ctx context.Context, q *wire.AuditQuery) (*wire.AuditPage, error) {
	var res wire.AuditPage
	if err := c.Call(ctx, wire.SubjectAuditQuery, "", "", q, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// AuditVerify asks auditd to verify its whole store.
func (c *Client) AuditVerify(ctx context.Context) (*wire.AuditVerifyReport, error) {
	var rep wire.AuditVerifyReport
	if err := c.Call(ctx, wire.SubjectAuditVerify, "", "", struct{}{}, &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}

// AuditStats asks auditd for its figures.
func (c *Client) AuditStats(ctx context.Context) (*AuditStats, error) {
	var st AuditStats
	if err := c.Call(ctx, wire.SubjectAuditStats, "", "", struct{}{}, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// AuditStats is what auditd says of its store and its lag.
type AuditStats = wire.AuditStats
