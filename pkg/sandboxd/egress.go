package sandboxd

import (
	"context"

	"github.com/moatsec/moat/pkg/egress"
	"github.com/moatsec/moat/pkg/sandbox"
	"github.com/moatsec/moat/pkg/wire"
)

// netHooks puts every connection of a run's egress proxy on the record: one
// net.conn event each, allowed or refused, tied to the run's request and
// session.
func (d *Daemon) netHooks(rr *wire.RunRequest, prof *wire.Profile) sandbox.NetHooks {
	h := d.cfg.Net
	h.OnConn = func(c egress.Conn) {
		verdict := wire.VerdictAllow
		if !c.Allowed {
			verdict = wire.VerdictDeny
		}
		d.record(&wire.AuditEvent{Kind: wire.KindNetConn, SessionID: rr.SessionID, RequestID: rr.RequestID,
			Profile: prof.Name, Verdict: verdict, DurationUS: c.Duration.Microseconds(),
			Detail: map[string]any{"proto": c.Proto, "host": c.Host, "port": c.Port, "addr": c.Addr, "rule": c.Rule,
				"entry": c.Entry, "reason": c.Reason, "bytes_up": c.Up, "bytes_down": c.Down}})
	}
	if rr.Approval == "" || rr.Approval == wire.ApprovalOnRequest {
		h.Ask = func(ctx context.Context, a egress.Ask) egress.Answer { return d.askNet(ctx, rr, prof, a) }
	}
	return h
}

// askNet puts a destination the run's lists refuse to a person through
// policyd (docs/sandbox.md, "Asking for a host"), while the connection
// waits; policyd records the question, the answer and its decision.
func (d *Daemon) askNet(ctx context.Context, rr *wire.RunRequest, prof *wire.Profile, a egress.Ask) egress.Answer {
	dec := d.bus.CheckResolved(ctx, &wire.CheckRequest{RequestID: rr.RequestID, SessionID: rr.SessionID, Cwd: prof.Cwd,
		Workspace: prof.Workspace, Profile: wire.RefResolved(prof), Approval: wire.ApprovalOnRequest,
		Net: &wire.NetAsk{Proto: a.Proto, Host: a.Host, Port: a.Port, Rule: a.Verdict.Rule, Reason: a.Verdict.Reason}}, nil)
	var first wire.Reason
	if len(dec.Reasons) > 0 {
		first = dec.Reasons[0]
	}
	if dec.Verdict != wire.VerdictAllow {
		return egress.Answer{Rule: first.Rule, Reason: first.Message}
	}
	return egress.Answer{OK: true, Run: dec.Scope == wire.GrantRun, Entry: first.Message}
}

// netDenied is the run result's list of refused destinations.
func netDenied(l []egress.Denial) []wire.NetDenial {
	if len(l) == 0 {
		return nil
	}
	out := make([]wire.NetDenial, 0, len(l))
	for _, d := range l {
		out = append(out, wire.NetDenial{Dest: d.Dest(), Rule: d.Rule, Reason: d.Reason, Fix: d.Fix})
	}
	return out
}
