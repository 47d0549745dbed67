package sandboxd

import (
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
	return h
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
