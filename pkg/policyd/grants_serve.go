package policyd

import (
	"context"
	"fmt"
	"time"

	"github.com/moatsec/moat/pkg/service"
	"github.com/moatsec/moat/pkg/wire"
)

// ReasonGrant is the reason rule of a prompt allowed by a grant.
const ReasonGrant = "approval.grant"

// fromGrant says whether dec is an allow a grant gave (its first reason).
func fromGrant(dec *wire.Decision) bool {
	return len(dec.Reasons) > 0 && dec.Reasons[0].Rule == ReasonGrant
}

// fromGrant allows a prompt that a grant covers, spending one of its uses;
// the use is on record before the answer (grant.used, and the allow's own
// record, acked, whose first reason names the grant). No grant: dec unchanged.
func (d *Daemon) fromGrant(ctx context.Context, cr *wire.CheckRequest, prof *wire.Profile, dec wire.Decision) wire.Decision {
	gr, err := d.grants.use(ctx, prof.Workspace, prof.Name, cr.SessionID, cr.Argv)
	if err != nil {
		d.log.Warn("grants not consulted; asking", "request_id", cr.RequestID, "err", err)
		return dec
	}
	if gr == nil {
		return dec
	}
	ev := &wire.AuditEvent{Kind: wire.KindGrantUsed, RequestID: cr.RequestID, SessionID: cr.SessionID,
		Profile: prof.Name, Argv: cr.Argv, Cwd: prof.Cwd, Verdict: wire.VerdictAllow, Reasons: dec.Reasons,
		Detail: map[string]any{"grant_id": gr.ID, "grant_kind": gr.Kind, "uses_left": gr.Uses, "granted_by": gr.By,
			"workspace": prof.Workspace}}
	// Its ack is awaited asynchronously: the allow that follows names the
	// grant and is itself acked before it is answered (also for sandboxd,
	// see fromGrant's use in policyd.go).
	if err := d.audit.PublishAsync(ev); err != nil {
		return withFirst(wire.VerdictDeny, wire.Reason{Rule: wire.ReasonAuditUnavailable,
			Message: "the use of grant " + gr.ID + " could not be recorded (" + err.Error() + "), so nothing may run"}, dec)
	}
	msg := fmt.Sprintf("grant %s by %s covers %s", gr.ID, gr.By, gr.Describe())
	if gr.Kind == wire.GrantUses {
		msg += fmt.Sprintf(" (%d uses left)", gr.Uses)
	}
	if !gr.ExpiresAt.IsZero() {
		msg += " until " + gr.ExpiresAt.Format(time.RFC3339)
	}
	return withFirst(wire.VerdictAllow, wire.Reason{Rule: ReasonGrant, Message: msg}, dec)
}

// grantFor makes the grant an allow answer asks for (nil: once). It is
// stored before the answer is acked, so the approver learns if it was not.
// Unless vouched, the asked prompt was judged under a profile its caller
// supplied: its workspace and profile name are only the caller's word, so
// only once may be answered.
func (d *Daemon) grantFor(q *wire.ApprovalAsk, a *wire.ApprovalAnswer, vouched bool) (*wire.Grant, error) {
	spec, err := wire.ParseGrant(a.For)
	if err != nil {
		return nil, err
	}
	if spec.Kind == wire.GrantOnce {
		if len(a.Prefix) > 0 {
			return nil, wire.Errorf(wire.CodeBadRequest, "a prefix narrows a grant: give --for too (session, 5m, 3uses, rule)")
		}
		return nil, nil
	}
	if a.Verdict != wire.VerdictAllow {
		return nil, wire.Errorf(wire.CodeBadRequest, "only an allow grants (for %q)", a.For)
	}
	if !vouched {
		return nil, wire.Errorf(wire.CodeBadRequest, "approval %s was asked under a profile its caller sent whole, which policyd cannot vouch for: answer once (grants are made from checks by profile name and from moat run)", q.ID)
	}
	now := time.Now().UTC()
	gr := &wire.Grant{ID: wire.NewID(), ApprovalID: q.ID, Kind: spec.Kind, Workspace: q.Workspace, Profile: q.Profile,
		Argv: q.Argv, By: a.By, At: now}
	if gr.By == "" {
		gr.By = "an approver"
	}
	if len(a.Prefix) > 0 {
		if err := wire.ValidGrantPrefix(a.Prefix, q.Argv); err != nil {
			return nil, err
		}
		gr.Argv, gr.Prefix = a.Prefix, len(a.Prefix) < len(q.Argv)
	}
	switch spec.Kind {
	case wire.GrantSession:
		if q.SessionID == "" {
			return nil, wire.Errorf(wire.CodeBadRequest, "the asking check names no session: grant for a duration instead")
		}
		gr.SessionID, gr.ExpiresAt = q.SessionID, now.Add(wire.GrantSessionMax)
	case "duration":
		gr.ExpiresAt = now.Add(spec.Duration)
	case wire.GrantUses:
		gr.Uses = spec.Uses
	case wire.GrantRule:
		if d.rules == nil {
			return nil, wire.Errorf(wire.CodeBadRequest, "this policyd keeps no rules file for grants (--grant-rules): grant for a duration or uses instead")
		}
		if _, err := ruleLine(gr); err != nil {
			return nil, wire.Errorf(wire.CodeBadRequest, "cannot grant this command as a rule: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.Deadline)
	defer cancel()
	if err := d.grants.create(ctx, gr); err != nil {
		return nil, err
	}
	if gr.Kind == wire.GrantRule {
		d.syncRules(d.grants.list)
	}
	if err := d.audit.Publish(ctx, &wire.AuditEvent{Kind: wire.KindGrantCreated, RequestID: q.RequestID, SessionID: q.SessionID,
		Profile: q.Profile, Argv: gr.Argv, Cwd: q.Cwd, Verdict: wire.VerdictAllow, Detail: grantDetail(gr)}); err != nil {
		d.log.Error("grant stored but not recorded", "grant_id", gr.ID, "err", err)
	}
	return gr, nil
}

func grantDetail(gr *wire.Grant) map[string]any {
	return map[string]any{"grant_id": gr.ID, "approval_id": gr.ApprovalID, "grant_kind": gr.Kind, "prefix": gr.Prefix,
		"uses_left": gr.Uses, "expires_at": gr.ExpiresAt, "granted_by": gr.By, "workspace": gr.Workspace}
}

// syncRules writes the rule grants in list to Config.RulesFile. A failure
// is logged: the file only records what the bucket holds, and the next
// change writes it again.
func (d *Daemon) syncRules(list func() []wire.Grant) {
	if err := d.rules.sync(list); err != nil {
		d.log.Error("rule grants not written; the grants in the bucket are in force", "file", d.cfg.RulesFile, "err", err)
	}
}

// listGrants answers moat.policy.grants (approver and admin keys only).
func (d *Daemon) listGrants(ctx context.Context, req *service.Request) (any, error) {
	if _, err := d.grants.bucket(); err != nil {
		return nil, err
	}
	return wire.GrantList{Grants: d.grants.list()}, nil
}

// revokeGrant answers moat.policy.revoke (approver and admin keys only).
func (d *Daemon) revokeGrant(ctx context.Context, req *service.Request) (any, error) {
	var r wire.RevokeRequest
	if err := req.Decode(&r); err != nil {
		return nil, err
	}
	if r.ID == "" || len(r.ID) > 64 {
		return nil, wire.Errorf(wire.CodeBadRequest, "give a grant id (moat grants lists them)")
	}
	gr, err := d.grants.revoke(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	if gr != nil && gr.Kind == wire.GrantRule && d.rules != nil {
		d.syncRules(d.grants.list) // its line goes with it
	}
	detail := map[string]any{"grant_id": r.ID, "revoked_by": r.By, "reason": r.Reason}
	ev := &wire.AuditEvent{Kind: wire.KindGrantRevoked, Detail: detail}
	if gr != nil {
		ev.Profile, ev.Argv, detail["workspace"] = gr.Profile, gr.Argv, gr.Workspace
	}
	if err := d.audit.Publish(ctx, ev); err != nil {
		d.log.Error("grant revoked but not recorded", "grant_id", r.ID, "err", err)
	}
	return wire.RevokeAck{ID: r.ID, Revoked: true}, nil
}
