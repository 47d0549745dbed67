package sandboxd

import (
	"time"

	"github.com/moatsec/moat/pkg/service"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// approvalWait is a run's side of policyd asking a person: while it lasts
// the run holds none of the service's request slots (nor a run slot: it
// takes one once allowed), so a person's pace keeps no other run out, and
// the caller hears who is asked and until when.
type approvalWait struct {
	caller *caller
	req    *service.Request
}

// tell is client.CheckWaiting's callback: about once a second.
func (w *approvalWait) tell(a wire.ApprovalWait) {
	w.req.Detach()
	if !w.caller.protocol {
		return
	}
	m := nats.NewMsg(w.caller.reply)
	m.Header.Set(wire.HeaderApprovalID, a.ID)
	m.Header.Set(wire.HeaderApprovalExpires, a.ExpiresAt.Format(time.RFC3339Nano))
	m.Header.Set(wire.HeaderApprovalReason, a.Reason)
	w.caller.nc.PublishMsg(m)
}
