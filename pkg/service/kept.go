package service

import (
	"sync"
	"time"

	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// maxKept and maxKeptBytes bound the answers a service keeps for its
// callers' resumes, in number and in bytes (body, subject and headers):
// the oldest goes first, whatever its age. An answer larger than
// maxKeptBytes alone is not kept. 32 MiB holds four answers of the bus's
// largest (8 MiB), or the last 4,096 decisions many times over.
const (
	maxKept      = 4096
	maxKeptBytes = 32 << 20
)

// kept holds the answers of the endpoints added with HandleKept for
// wire.AnswerKept after they were sent, by their reply subject and request
// id. The bus's permission to answer on a caller's reply subject comes
// with the request and lives on the connection that received it: when busd
// restarts between a request and its answer, the answer is refused. The
// caller then says again where it listens (Resumable's subject), which
// gives the permission back: a request still being handled is answered
// when done, and one answered recently is sent again, the same message —
// handled once, recorded once.
//
// A kept answer is its caller's alone. Its key holds the reply subject,
// which is under the caller connection's private inbox (busd lets no other
// connection, even one with the same key, read there: wire.CallerRoles, and
// a worker's tag on a leaf: wire.LeafInbox); the request id alone is not
// secret (it is in audit records). So a resume is answered only with the
// answer to that very reply subject, on it; a resume or a request from
// anyone else under the same id neither gets nor replaces it. Nothing is
// ever answered on a resume but a kept answer: every copy of the service
// hears each resume, and one that does not hold its answer stays silent.
type kept struct {
	nc    *nats.Conn
	sub   *nats.Subscription
	mu    sync.Mutex
	byKey map[keptKey]*keptAnswer
	going map[keptKey]int      // requests being handled, by key (a request not resent may share one)
	ring  [maxKept]*keptAnswer // in the order answered, from head, n of them
	head  int
	n     int
	bytes int // the sizes of the n answers in ring
}

// keptKey names a kept answer: the reply subject it was sent to and its
// request id.
type keptKey struct{ reply, requestID string }

type keptAnswer struct {
	key  keptKey
	msg  *nats.Msg
	at   time.Time
	size int
}

// keptSize is what an answer costs kept: its body, subject and headers.
func keptSize(msg *nats.Msg) int {
	n := len(msg.Data) + len(msg.Subject) + len(msg.Reply)
	for k, vs := range msg.Header {
		for _, v := range vs {
			n += len(k) + len(v)
		}
	}
	return n
}

// Resumable makes the service hear its callers' resumes on subject (every
// copy hears each: not a queue group) and send again an answer of an
// endpoint added with HandleKept. Call it once, before HandleKept; the
// subscription ends with the service, after its last handler.
func (s *Service) Resumable(subject string) error {
	k := &kept{nc: s.nc, byKey: make(map[keptKey]*keptAnswer), going: make(map[keptKey]int)}
	sub, err := s.nc.Subscribe(subject, k.resume)
	if err != nil {
		return err
	}
	k.sub, s.kept = sub, k
	return s.nc.Flush()
}

// HandleKept is Handle, keeping each answer a while for a caller that did
// not get it (Resumable).
func (s *Service) HandleKept(name, subject string, h Handler) error {
	if s.kept == nil {
		return errNotResumable
	}
	return s.handle(name, subject, h, true, false)
}

// start counts req in as being handled, and says whether to handle it: a
// request sent again (wire.HeaderResent) that this copy is handling is
// not (its answer will go to the same reply subject, which the bus lets
// this connection answer again now that it delivered the request), and
// one it answered is answered again with the kept answer instead. A
// request without a request id or a reply subject is always handled, and
// never kept.
func (k *kept) start(req *Request) bool {
	key := keptKey{req.reply, req.RequestID}
	if key.reply == "" || key.requestID == "" {
		return true
	}
	k.mu.Lock()
	if k.againLocked(req, key) {
		return false
	}
	k.going[key]++
	k.mu.Unlock()
	return true
}

// again is start's first half, for before a request takes any room: it
// says whether req was sent again and is handled or was answered here
// (then answered again with the kept answer), counting nothing in.
func (k *kept) again(req *Request) bool {
	key := keptKey{req.reply, req.RequestID}
	if key.reply == "" || key.requestID == "" || req.hdr.Get(wire.HeaderResent) == "" {
		return false // not sent again: nothing to look up, no lock taken
	}
	k.mu.Lock()
	if k.againLocked(req, key) {
		return true
	}
	k.mu.Unlock()
	return false
}

// againLocked is again with k.mu held; when it says true it has unlocked
// k.mu (and sent the kept answer, if that is what it found).
func (k *kept) againLocked(req *Request, key keptKey) bool {
	if req.hdr.Get(wire.HeaderResent) == "" {
		return false
	}
	if k.going[key] > 0 {
		k.mu.Unlock()
		return true
	}
	if a := k.byKey[key]; a != nil && time.Since(a.at) <= wire.AnswerKept {
		k.mu.Unlock()
		k.nc.PublishMsg(a.msg)
		return true
	}
	return false
}

// keep remembers msg, the answer to req (nil: none is sent), once its
// handler is done and before msg is sent: a resume the caller sends as
// soon as it could have seen the answer finds it. Answers out of their
// time, then the oldest while over a bound, make room first.
func (k *kept) keep(req *Request, msg *nats.Msg) {
	key := keptKey{req.reply, req.RequestID}
	if key.reply == "" || key.requestID == "" {
		return
	}
	var a *keptAnswer
	if msg != nil && msg.Subject == key.reply {
		if size := keptSize(msg); size <= maxKeptBytes {
			a = &keptAnswer{key: key, msg: msg, at: time.Now(), size: size}
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.going[key]--; k.going[key] <= 0 {
		delete(k.going, key)
	}
	if a == nil {
		return
	}
	for k.n > 0 && (k.n == maxKept || k.bytes+a.size > maxKeptBytes || time.Since(k.ring[k.head].at) > wire.AnswerKept) {
		k.evict()
	}
	k.ring[(k.head+k.n)%maxKept] = a
	k.n++
	k.bytes += a.size
	k.byKey[a.key] = a
}

// evict forgets the oldest answer. k.mu is held.
func (k *kept) evict() {
	old := k.ring[k.head]
	if k.byKey[old.key] == old { // not replaced by a later answer to the same key
		delete(k.byKey, old.key)
	}
	k.ring[k.head] = nil
	k.head = (k.head + 1) % maxKept
	k.n--
	k.bytes -= old.size
}

// resume hears a caller that lost word of its request: receiving it lets
// this connection answer on its reply subject again. The answer to a
// request of that id on that very reply subject, sent here recently, is
// sent again; anything else is ignored (a request still being handled is
// answered when done, now that the bus lets it through).
func (k *kept) resume(m *nats.Msg) {
	if m.Reply == "" {
		return
	}
	k.mu.Lock()
	a := k.byKey[keptKey{m.Reply, m.Header.Get(wire.HeaderRequestID)}]
	k.mu.Unlock()
	if a == nil || time.Since(a.at) > wire.AnswerKept {
		return
	}
	k.nc.PublishMsg(a.msg)
}
