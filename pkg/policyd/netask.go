package policyd

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/moatsec/moat/pkg/egress"
	"github.com/moatsec/moat/pkg/service"
	"github.com/moatsec/moat/pkg/wire"
)

// checkNet answers a run's egress proxy asking for a destination its lists
// refuse (CheckRequest.Net): a grant made for that destination allows it,
// else a person is asked, as for a command's prompt. Only sandboxd asks
// (on moat.policy.check.resolved, with the run's profile), only under
// approval on-request; the proxy never asks about what a deny list or the
// address checks refuse. The question, the answer and the decision are on
// record like a command's.
func (d *Daemon) checkNet(req *service.Request, cr *wire.CheckRequest, fromSandboxd bool, start time.Time) (any, error) {
	if !fromSandboxd {
		return nil, wire.Errorf(wire.CodeDenied, "a network ask comes from sandboxd only, on %s", wire.SubjectCheckResolved)
	}
	if err := validNetAsk(cr.Net); err != nil {
		return nil, err
	}
	prof, err := d.sentProfile(req, cr)
	if err != nil {
		return nil, err
	}
	if prof == nil {
		return nil, wire.Errorf(wire.CodeBadRequest, "a network ask carries the run's resolved profile")
	}
	dest := cr.Net.Dest()
	cr.Argv = wire.NetArgv(dest)
	dec := wire.Decision{Verdict: wire.VerdictPrompt, Reasons: []wire.Reason{{Rule: cr.Net.Rule,
		Message: fmt.Sprintf("the run asks to reach %s (%s): %s", dest, cr.Net.Proto, cr.Net.Reason)}}}
	dctx, cancel := context.WithTimeout(context.Background(), d.cfg.Deadline)
	dec = d.fromGrant(dctx, cr, prof, dec)
	cancel()
	if dec.Verdict == wire.VerdictPrompt {
		if cr.Approval == wire.ApprovalOnRequest {
			dec = d.ask(req, cr, prof, dec, true)
		} else {
			dec = withFirst(wire.VerdictDeny, wire.Reason{Rule: wire.ReasonApprovalNever,
				Message: "the destination needs a person's approval and the caller allows none"}, dec)
		}
	}
	dec.DecidedBy = d.svc.ID()
	dec.ElapsedUS = time.Since(start).Microseconds()
	ev := &wire.AuditEvent{Kind: wire.KindPolicyDecision, SessionID: cr.SessionID, RequestID: cr.RequestID,
		Profile: prof.Name, Argv: cr.Argv, Cwd: prof.Cwd, Verdict: dec.Verdict, Reasons: dec.Reasons,
		DurationUS: dec.ElapsedUS, Detail: map[string]any{"rules": ruleIDs(dec.Reasons), "workspace": prof.Workspace,
			"net": dest, "proto": cr.Net.Proto, "scope": dec.Scope}}
	// As for a command: an allow is answered once its record is acked.
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.Deadline)
	defer cancel()
	if err := d.audit.Publish(ctx, ev); err != nil {
		d.log.Error("network decision not recorded; answering deny", "request_id", cr.RequestID, "err", err)
		return withFirst(wire.VerdictDeny, wire.Reason{Rule: wire.ReasonAuditUnavailable,
			Message: "the decision could not be recorded (" + err.Error() + "), so the connection may not go out"}, dec), nil
	}
	return dec, nil
}

// validNetAsk checks the host as the proxy names it (wire bounded the rest).
func validNetAsk(a *wire.NetAsk) error {
	if _, isName := egress.CanonicalName(a.Host); !isName {
		if _, err := netip.ParseAddr(a.Host); err != nil {
			return wire.Errorf(wire.CodeBadRequest, "network ask: %q is not a host name or address", a.Host)
		}
	}
	return nil
}

// answerGrant makes the grant an allow answer asks for. A network ask's
// answer may be once (this connection), run (this destination for the rest
// of the run: the proxy keeps it, no grant), or a session, a duration or a
// use count (a grant for the destination alone); never a rule or a prefix.
// "run" answers a network ask only.
func (d *Daemon) answerGrant(q *wire.ApprovalAsk, a *wire.ApprovalAnswer, vouched bool) (*wire.Grant, error) {
	spec, err := wire.ParseGrant(a.For)
	if err != nil {
		return nil, err
	}
	if _, net := wire.NetDest(q.Argv); !net {
		if spec.Kind == wire.GrantRun {
			return nil, wire.Errorf(wire.CodeBadRequest, "--for run answers a network ask; a command is granted once, for the session, a duration, a use count or as a rule")
		}
		return d.grantFor(q, a, vouched)
	}
	switch {
	case len(a.Prefix) > 0:
		return nil, wire.Errorf(wire.CodeBadRequest, "a network ask is granted for its destination only: no prefix")
	case spec.Kind == wire.GrantRule:
		return nil, wire.Errorf(wire.CodeBadRequest, "a network ask is not granted as a rule: add the host to net_allow of the profile, or a network_rule allow; or answer --for run, session, 5m, 3uses")
	case spec.Kind == wire.GrantOnce || spec.Kind == wire.GrantRun:
		return nil, nil
	}
	return d.grantFor(q, a, vouched)
}
