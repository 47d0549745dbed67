package client

import (
	"sync"

	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// mux routes replies that may come more than once (interim messages,
// output chunks, then the answer) over one wildcard subscription, as
// nats.go does for plain requests: a subscription per call would cost a
// SUB and an UNSUB each.
type mux struct {
	once   sync.Once
	err    error
	prefix string
	mu     sync.Mutex
	calls  map[string]*queue
}

// queue holds one call's messages in arrival order. It never drops one and
// never blocks the subscription that fills it (a slow reader of one run's
// output holds up no other call); what it holds is bounded by what the
// service sends — for a run, the profile's output cap.
type queue struct {
	mu    sync.Mutex
	msgs  []*nats.Msg
	ready chan struct{}   // signalled when a message is put
	tap   func(*nats.Msg) // optional: sees each message as it arrives
}

func (q *queue) put(m *nats.Msg) {
	if q.tap != nil {
		q.tap(m)
	}
	q.mu.Lock()
	q.msgs = append(q.msgs, m)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// next takes the oldest message, or nil when there is none: after a
// signal on ready, call it until it returns nil.
func (q *queue) next() *nats.Msg {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.msgs) == 0 {
		return nil
	}
	m := q.msgs[0]
	q.msgs[0] = nil
	q.msgs = q.msgs[1:]
	return m
}

// replies returns a fresh reply subject, the queue its messages arrive
// in, and a function to call when done with it. tap, when set, sees each
// message as it arrives, on the subscription's goroutine: it must not block.
func (c *Client) replies(tap func(*nats.Msg)) (string, *queue, func(), error) {
	m := &c.mux
	m.once.Do(func() {
		m.prefix = c.nc.NewInbox() + "."
		m.calls = map[string]*queue{}
		var sub *nats.Subscription
		sub, m.err = c.nc.Subscribe(m.prefix+">", func(msg *nats.Msg) {
			// A call's subject, or one it routes here too (also): nothing
			// else under the prefix reaches a call.
			token := msg.Subject[len(m.prefix):]
			m.mu.Lock()
			q := m.calls[token]
			m.mu.Unlock()
			if q != nil {
				q.put(msg)
			}
		})
		if m.err == nil {
			// The queues hold what arrives and the callback only appends, so
			// the subscription's own pending limits would only drop chunks.
			m.err = sub.SetPendingLimits(-1, -1)
		}
	})
	if m.err != nil {
		return "", nil, nil, m.err
	}
	token := wire.NewToken() // not a NUID: a reply subject seen gives away no other
	q := &queue{ready: make(chan struct{}, 1), tap: tap}
	m.mu.Lock()
	m.calls[token] = q
	m.mu.Unlock()
	return m.prefix + token, q, func() {
		m.mu.Lock()
		delete(m.calls, token)
		m.mu.Unlock()
	}, nil
}

// also routes name, a reply subject under the call's (reply + "." + a
// token), to the call's queue q as well, until the function it returns is
// called.
func (c *Client) also(name string, q *queue) func() {
	m := &c.mux
	key := name[len(m.prefix):]
	m.mu.Lock()
	m.calls[key] = q
	m.mu.Unlock()
	return func() {
		m.mu.Lock()
		delete(m.calls, key)
		m.mu.Unlock()
	}
}
