package sandboxd

import (
	"time"

	"github.com/moatsec/moat/pkg/service"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// runSlot is a run's place among the MaxRuns commands sandboxd runs at
// once. It is used by the run's own handler goroutine only.
type runSlot struct {
	ch   chan struct{}
	held bool
}

// full reports whether every place is taken.
func (s *runSlot) full() bool { return len(s.ch) == cap(s.ch) }

// retake takes the place, unless held already; false when none is free.
func (s *runSlot) retake() bool {
	if s.held {
		return true
	}
	select {
	case s.ch <- struct{}{}:
		s.held = true
		return true
	default:
		return false
	}
}

func (s *runSlot) release() {
	if s.held {
		<-s.ch
		s.held = false
	}
}

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
