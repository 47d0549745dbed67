package audit

import (
	"encoding/binary"
	"strconv"
	"time"

	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// Batches (docs/bus.md, "Audit batches"). Publish does not send each event
// alone when others are on their way: events published while a batch is
// in flight gather into the next one, which goes as one JetStream message
// and is acked as a whole. A publisher with nothing in flight sends at
// once, so a lone caller waits one round trip as before; under load one
// message and one ack carry many events (group commit).
//
// A batch leaves when the one before it is acked, when it has waited
// Linger although MaxInflight batches are not yet out, or when it is full
// (MaxBatchEvents, MaxBatchBytes). Every batch is led by the synchronous
// caller who opened it: that goroutine sends it and wakes the batch after
// it, so the publisher has no goroutine of its own. Each Publish returns
// only once the batch holding its event is acked (the invariant of the
// package: what a caller does after Publish returns is on record).
// Asynchronous events join a batch being gathered, or go alone.
const (
	MaxBatchEvents = 256       // events in one batch message
	MaxBatchBytes  = 256 << 10 // bytes of events in one batch message (an event larger goes alone)
	Linger         = 250 * time.Microsecond
	MaxInflight    = 4 // batches sent and not yet acked, per publisher
)

// batchHeader is the longest msgpack array header before a batch's events.
const batchHeader = 3

// A batch is events that go as one message.
type batch struct {
	msgs     []*nats.Msg // each event as it would go alone
	size     int         // bytes of the events' bodies
	async    int         // events nobody waits for
	deadline time.Time   // the latest of its synchronous events'
	sent     bool        // taken to be sent (counted in inflight)
	lead     chan struct{}
	done     chan struct{}
	err      error
}

// join adds msg to the batch being gathered, or opens one, and reports
// whether the caller leads it. An asynchronous event (zero deadline) never
// opens a batch: join returns nil, and the event goes alone.
func (p *Publisher) join(msg *nats.Msg, deadline time.Time) (b *batch, lead bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b = p.open
	if b != nil && (len(b.msgs) >= MaxBatchEvents || b.size+len(msg.Data) > MaxBatchBytes) {
		p.seal(b)
		b = nil
	}
	if b == nil {
		if deadline.IsZero() {
			return nil, false
		}
		b = &batch{lead: make(chan struct{}), done: make(chan struct{})}
		p.open, lead = b, true
	}
	b.msgs = append(b.msgs, msg)
	b.size += len(msg.Data)
	if deadline.IsZero() {
		b.async++
	} else if deadline.After(b.deadline) {
		b.deadline = deadline
	}
	if lead && p.inflight == 0 && len(p.full) == 0 {
		p.launch(b) // nothing in flight: no reason to wait
	}
	return b, lead
}

// seal closes b to new events: it goes now if it may, else after the
// batches before it. Called with p.mu held.
func (p *Publisher) seal(b *batch) {
	p.open = nil
	if p.inflight < MaxInflight {
		p.launch(b)
		return
	}
	p.full = append(p.full, b)
}

// launch lets b's leader send it. Called with p.mu held.
func (p *Publisher) launch(b *batch) {
	if p.open == b {
		p.open = nil
	}
	for i, f := range p.full {
		if f == b {
			p.full = append(p.full[:i], p.full[i+1:]...)
			break
		}
	}
	b.sent = true
	p.inflight++
	close(b.lead)
}

// lead waits for b's turn, sends it, then lets the next batch go.
func (p *Publisher) lead(b *batch) {
	p.await(b)
	b.err = p.send(b.deadline, p.batchMessage(b))
	p.mu.Lock()
	p.inflight--
	switch {
	case len(p.full) > 0:
		p.launch(p.full[0])
	case p.open != nil:
		p.launch(p.open)
	}
	p.mu.Unlock()
	if b.err != nil && b.async > 0 {
		p.lost.Add(uint64(b.async))
		p.log.Error("audit events not acked", "events", b.async, "err", b.err)
	}
	close(b.done)
}

// await waits until b may go: launched by the batch before it, by its
// filling up, or by its leader once it has waited Linger and fewer than
// MaxInflight batches are out.
func (p *Publisher) await(b *batch) {
	select {
	case <-b.lead:
		return
	default:
	}
	timer := time.NewTimer(Linger)
	defer timer.Stop()
	for {
		select {
		case <-b.lead:
			return
		case <-timer.C:
			p.mu.Lock()
			if !b.sent && p.inflight < MaxInflight {
				p.launch(b)
			}
			p.mu.Unlock()
			timer.Reset(Linger)
		}
	}
}

// batchMessage is b as it goes: its one event alone as ever, or the batch
// message (docs/bus.md): a msgpack array of the events, each encoded as it
// would go alone.
func (p *Publisher) batchMessage(b *batch) *nats.Msg {
	if len(b.msgs) == 1 {
		return b.msgs[0]
	}
	body := make([]byte, 0, batchHeader+b.size)
	body = appendArrayHeader(body, len(b.msgs))
	for _, m := range b.msgs {
		body = append(body, m.Data...)
	}
	vals := [...]string{wire.NewID(), wire.ContentMsgpack, wire.KindAuditBatch, strconv.Itoa(len(b.msgs))}
	keys := [...]string{wire.HeaderMsgID, wire.HeaderContentType, wire.HeaderKind, wire.HeaderAuditBatch}
	hdr := make(nats.Header, len(keys))
	for i, k := range keys {
		hdr[k] = vals[i : i+1 : i+1]
	}
	p.batches.Add(1)
	return &nats.Msg{Subject: wire.AuditSubject(p.source, wire.KindAuditBatch), Header: hdr, Data: body}
}

// appendArrayHeader appends a msgpack array header for n elements.
func appendArrayHeader(b []byte, n int) []byte {
	if n < 16 {
		return append(b, 0x90|byte(n))
	}
	return binary.BigEndian.AppendUint16(append(b, 0xdc), uint16(n))
}

// Batches counts the batch messages sent (of two events or more).
func (p *Publisher) Batches() uint64 { return p.batches.Load() }
