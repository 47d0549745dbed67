package policyd

import (
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/moatsec/moat/pkg/service"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// maxAnswered bounds the answers kept for wire.SubjectCheckResume: the
// oldest goes first, whatever its age.
const maxAnswered = 4096

// answered keeps each check's answer for wire.CheckAnswerKept after it was
// sent, by request id and with its reply subject: when busd restarted
// between the check and its answer, the bus refused the answer (its
// permission to answer there died with busd), and the caller's resume gets
// it sent again — the decision made once, recorded once.
type answered struct {
	nc   *nats.Conn
	mu   sync.Mutex
	byID map[string]*answer
	ring [maxAnswered]*answer // in the order answered; next is the oldest
	next int
}

// answer is one check's answer as it went out.
type answer struct {
	requestID string
	reply     string
	format    wire.Format
	v         any
	err       error
	at        time.Time
}

func newAnswered(nc *nats.Conn) *answered {
	return &answered{nc: nc, byID: make(map[string]*answer)}
}

// keep remembers the answer to req (v or err, as the handler returned it).
// A request without a request id or a reply subject cannot be resumed.
func (a *answered) keep(req *service.Request, v any, err error) {
	requestID := req.RequestID
	if requestID == "" || req.ReplySubject() == "" {
		return
	}
	x := &answer{requestID: requestID, reply: req.ReplySubject(), format: req.Format, v: v, err: err, at: time.Now()}
	a.mu.Lock()
	defer a.mu.Unlock()
	if old := a.ring[a.next]; old != nil && a.byID[old.requestID] == old {
		delete(a.byID, old.requestID)
	}
	a.ring[a.next] = x
	a.next = (a.next + 1) % maxAnswered
	a.byID[requestID] = x
}

// resume hears a caller that lost word of its check: receiving it lets
// this connection answer on its reply subject again. A check of that
// request id answered here, recently, for that very reply subject is
// answered again; anything else is ignored (a check still being decided
// is answered when decided, now that the bus lets it through).
func (a *answered) resume(m *nats.Msg) {
	id := m.Header.Get(wire.HeaderRequestID)
	a.mu.Lock()
	x := a.byID[id]
	a.mu.Unlock()
	if x == nil || m.Reply == "" || m.Reply != x.reply || time.Since(x.at) > wire.CheckAnswerKept {
		return
	}
	a.nc.PublishMsg(x.message())
}

// message is the answer as pkg/service sends it: the body in the request's
// format, or the error in headers and body.
func (x *answer) message() *nats.Msg {
	msg := nats.NewMsg(x.reply)
	msg.Header.Set(wire.HeaderContentType, x.format.ContentType())
	msg.Header.Set(wire.HeaderRequestID, x.requestID)
	err := x.err
	if err == nil {
		if msg.Data, err = wire.Encode(x.format, x.v); err == nil {
			return msg
		}
	}
	var we *wire.Error
	if !errors.As(err, &we) {
		we = &wire.Error{Code: wire.CodeOf(err), Message: err.Error()}
	}
	msg.Header.Set(wire.HeaderErrorCode, strconv.Itoa(we.Code))
	msg.Header.Set(wire.HeaderError, we.Message)
	msg.Data, _ = wire.Encode(x.format, wire.ErrorBody{Error: we})
	return msg
}
