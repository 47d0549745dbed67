package client

import (
	"context"
	"fmt"
	"time"

	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// RunAskAudit is how long Run hears nothing from sandboxd, even after
// resuming, before it looks in the audit trail for how the run ended: a run
// that ended while the bus was away has its end on record, but its answer
// went nowhere.
const RunAskAudit = 5 * time.Second

// resume says again where the caller listens, on wire.SubjectRunResume with
// the run's reply subject and request id: receiving it gives sandboxd back
// the bus's permission to answer there, lost when busd restarted or
// sandboxd's connection moved (see pkg/wire/run.go).
func (r *runReader) resume(req *nats.Msg) {
	m := nats.NewMsg(wire.SubjectRunResume)
	m.Reply = req.Reply
	m.Header.Set(wire.HeaderRequestID, req.Header.Get(wire.HeaderRequestID))
	if r.c.nc.PublishMsg(m) == nil {
		r.resumed = true
	}
}

// ended looks up the run's end in the audit trail: a clear error naming how
// it ended when it is there (its output is lost), nothing while it is not.
func (r *runReader) ended(ctx context.Context, requestID string) (*wire.RunResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	page, err := r.c.AuditQuery(ctx, &wire.AuditQuery{RequestID: requestID, Limit: 100})
	if err != nil {
		return nil, nil // auditd not back yet: the next tick asks again
	}
	for _, e := range page.Events {
		ev := &e.Event
		var how string
		switch {
		case ev.Kind == wire.KindRunExit && ev.ExitCode != nil:
			how = fmt.Sprintf("ended with exit status %d", *ev.ExitCode)
			if sig, _ := ev.Detail["signal"].(string); sig != "" {
				how += " (" + sig + ")"
			}
		case ev.Kind == wire.KindRunFailed:
			how = fmt.Sprintf("failed: %v", ev.Detail["error"])
		default:
			continue
		}
		return nil, wire.Errorf(wire.CodeUnavailable, "run %s %s while the bus was failing over; its answer and output were lost with the bus; "+
			"`moat audit query --request %s` has its record, and the same request id never runs twice", requestID, how, requestID)
	}
	return nil, nil
}
