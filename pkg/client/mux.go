package client

import (
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// mux routes replies that may come more than once (an interim message, then
// the answer) over one wildcard subscription, as nats.go does for plain
// requests: a subscription per call would cost a SUB and an UNSUB each.
type mux struct {
	once   sync.Once
	err    error
	prefix string
	mu     sync.Mutex
	calls  map[string]chan *nats.Msg
}

// replies returns a fresh reply subject, the channel its messages arrive
// on, and a function to call when done with it.
func (c *Client) replies() (string, <-chan *nats.Msg, func(), error) {
	m := &c.mux
	m.once.Do(func() {
		m.prefix = c.nc.NewInbox() + "."
		m.calls = map[string]chan *nats.Msg{}
		_, m.err = c.nc.Subscribe(m.prefix+"*", func(msg *nats.Msg) {
			token := msg.Subject[len(m.prefix):]
			m.mu.Lock()
			ch := m.calls[token]
			m.mu.Unlock()
			if ch != nil {
				select {
				case ch <- msg:
				default: // more messages than a call expects: drop
				}
			}
		})
	})
	if m.err != nil {
		return "", nil, nil, m.err
	}
	token := nuid.Next()
	ch := make(chan *nats.Msg, 4)
	m.mu.Lock()
	m.calls[token] = ch
	m.mu.Unlock()
	return m.prefix + token, ch, func() {
		m.mu.Lock()
		delete(m.calls, token)
		m.mu.Unlock()
	}, nil
}
