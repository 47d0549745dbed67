package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// AckTimeout bounds the wait for JetStream's ack of one attempt to publish.
const AckTimeout = 2 * time.Second

// Publisher publishes one component's events. It is safe for concurrent use.
type Publisher struct {
	js       jetstream.JetStream
	source   string
	instance string
	seq      atomic.Uint64
	lost     atomic.Uint64 // asynchronous publishes JetStream did not ack
	log      *slog.Logger
	san      *Sanitizer
	batches  atomic.Uint64 // batch messages sent
	// steady is 1 + the connection's reconnects when the stream last
	// acked a message sent here; 0 before that and after a failure.
	steady atomic.Uint64

	mu       sync.Mutex // guards the batches below (batch.go)
	open     *batch     // gathering events; nil when none
	full     []*batch   // full, waiting for a place in flight
	inflight int        // batches sent and not yet acked
}

// SetSanitizer makes the publisher sanitize every event before it leaves
// the process (daemons load it with LoadSanitizer from MOAT_HOME/keys).
func (p *Publisher) SetSanitizer(s *Sanitizer) { p.san = s }

// MaxPending bounds asynchronous publishes awaiting their ack; past it
// PublishAsync waits (back-pressure) up to AckTimeout, then fails.
const MaxPending = 4096

// NewPublisher publishes as source (the component's role) from one process,
// named instance.
func NewPublisher(nc *nats.Conn, source, instance string) (*Publisher, error) {
	p := &Publisher{source: source, instance: instance, log: slog.Default()}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(MaxPending),
		jetstream.WithPublishAsyncTimeout(AckTimeout),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) {
			p.lost.Add(1)
			p.steady.Store(0)
			p.log.Error("audit event not acked", "subject", m.Subject, "id", m.Header.Get(wire.HeaderMsgID), "err", err)
		}))
	if err != nil {
		return nil, err
	}
	p.js = js
	return p, nil
}

// SetLogger sets where unacked asynchronous events are reported.
func (p *Publisher) SetLogger(l *slog.Logger) { p.log = l }

// Lost counts asynchronous events JetStream did not ack.
func (p *Publisher) Lost() uint64 { return p.lost.Load() }

// Publish stamps ev (id, time, source, instance, seq) and waits until
// MOAT_AUDIT has it — alone, or in a batch with events published at the
// same time (batch.go) — sending it again while the stream does not answer,
// up to ctx's deadline (RecordWait without one). An error means the event
// is not known to be on record: the caller must not go on as if it were
// (fail closed).
func (p *Publisher) Publish(ctx context.Context, ev *wire.AuditEvent) error {
	msg, err := p.message(ev)
	if err != nil {
		return err
	}
	return p.publish(ctx, msg)
}

// PublishStamped publishes an event Stamp stamped earlier, by this
// publisher or another of the same source, unchanged — its id, seq and
// instance included — as Publish does. Sent twice, it is stored once
// (auditd keeps one event per id). A component uses it to put on record an
// event it fixed before acting on it, or one a lost copy of itself fixed.
func (p *Publisher) PublishStamped(ctx context.Context, ev *wire.AuditEvent) error {
	if ev.ID == "" || ev.Seq == 0 || ev.Source != p.source {
		return fmt.Errorf("publish a stamped event: event %q (source %q, seq %d) was not stamped by a %s publisher", ev.ID, ev.Source, ev.Seq, p.source)
	}
	msg, err := p.encode(ev)
	if err != nil {
		return err
	}
	return p.publish(ctx, msg)
}

// publish waits until MOAT_AUDIT has msg (Publish).
func (p *Publisher) publish(ctx context.Context, msg *nats.Msg) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(RecordWait)
	}
	b, lead := p.join(msg, deadline)
	if lead {
		p.lead(b)
	}
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return unrecorded(ctx.Err())
	}
}

// send publishes msg until JetStream acks it or the deadline passes, each
// attempt waiting AckTimeout at most. The same message goes again while the
// stream is away (a server lost, a leader being elected): its Nats-Msg-Id
// makes JetStream store it once.
func (p *Publisher) send(deadline time.Time, msg *nats.Msg) error {
	for {
		// One context an attempt, not one for the whole and one inside it.
		until := time.Now().Add(AckTimeout)
		if deadline.Before(until) {
			until = deadline
		}
		actx, cancel := context.WithDeadline(context.Background(), until)
		reconnects := p.js.Conn().Stats().Reconnects // before: a reconnect during the wait is not steady
		_, err := p.js.PublishMsg(actx, msg, jetstream.WithExpectStream(wire.AuditStream))
		cancel()
		if err == nil {
			p.steady.Store(reconnects + 1)
			return nil
		}
		left := time.Until(deadline)
		if !transient(err) || left <= 0 {
			p.steady.Store(0)
			return unrecorded(err)
		}
		time.Sleep(min(left, 100*time.Millisecond))
	}
}

// RecordWait bounds Publish when the caller's context has no deadline: long
// enough for a cluster to elect a new leader for the stream.
const RecordWait = 10 * time.Second

// transient reports whether a failed publish may succeed when sent again:
// nobody answered, no ack in time, or JetStream busy electing a leader. A
// full stream is not transient.
func transient(err error) bool {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout), errors.Is(err, nats.ErrDisconnected):
		return true
	case errors.As(err, &apiErr):
		return apiErr.Code == 503 && !Full(apiErr.Description) // JetStream says a full stream with a 503 too
	}
	return false
}

// Full reports whether a JetStream error text says the stream is full (its
// bytes or messages limit, with new messages discarded).
func Full(text string) bool {
	return strings.Contains(text, "maximum bytes") || strings.Contains(text, "maximum messages")
}

// PublishAsync stamps ev and sends it without waiting for the ack, for
// records of things that act on nothing by themselves (a policy check: the
// run that follows is recorded synchronously by sandboxd). An ack that does
// not come is logged and counted in Lost; an error here means the event was
// not even sent. The event rides in a batch being gathered if there is one.
func (p *Publisher) PublishAsync(ev *wire.AuditEvent) error {
	msg, err := p.message(ev)
	if err != nil {
		return err
	}
	if b, _ := p.join(msg, time.Time{}); b != nil {
		return nil
	}
	if _, err := p.js.PublishMsgAsync(msg, jetstream.WithExpectStream(wire.AuditStream)); err != nil {
		return unrecorded(err)
	}
	return nil
}

// Acked is closed once every event PublishAsync has sent so far has its
// ack, or its failure counted in Lost.
func (p *Publisher) Acked() <-chan struct{} { return p.js.PublishAsyncComplete() }

// message stamps ev and builds its message.
func (p *Publisher) message(ev *wire.AuditEvent) (*nats.Msg, error) {
	p.Stamp(ev)
	return p.encode(ev)
}

// Stamp gives ev what Publish gives it before it leaves — an id (unless it
// has one), the time (unless set), this publisher's source, instance and
// next seq — and sanitizes and bounds it. Publish it with PublishStamped;
// a stamped event never published leaves a hole in this instance's seqs.
func (p *Publisher) Stamp(ev *wire.AuditEvent) {
	if ev.ID == "" {
		ev.ID = wire.NewID()
	}
	if ev.TS.IsZero() {
		ev.TS = time.Now().UTC()
	}
	ev.Source, ev.Instance = p.source, p.instance
	ev.Seq = p.seq.Add(1)
	if p.san != nil {
		p.san.Event(ev)
	} else {
		Bound(ev)
	}
}

// encode builds a stamped event's message.
func (p *Publisher) encode(ev *wire.AuditEvent) (*nats.Msg, error) {
	body, err := wire.Encode(wire.Msgpack, ev)
	if err != nil {
		return nil, fmt.Errorf("encode audit event: %w", err)
	}
	// The header's values share one array: an allocation, not one each.
	vals := [...]string{ev.ID, wire.ContentMsgpack, ev.Kind, ev.Verdict, ev.RequestID, ev.SessionID}
	keys := [...]string{wire.HeaderMsgID, wire.HeaderContentType, wire.HeaderKind, wire.HeaderVerdict, wire.HeaderRequestID, wire.HeaderSessionID}
	hdr := make(nats.Header, len(keys))
	for i, k := range keys {
		if i < 3 || vals[i] != "" { // id, content type and kind always
			hdr[k] = vals[i : i+1 : i+1]
		}
	}
	return &nats.Msg{Subject: wire.AuditSubject(p.source, ev.Kind), Header: hdr, Data: body}, nil
}

// unrecorded turns a failed publish into a 503 that says what to do.
func unrecorded(err error) error {
	switch {
	case errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders):
		return wire.Errorf(wire.CodeUnavailable, "audit stream %s is not answering, so nothing can be recorded: check busd", wire.AuditStream)
	case Full(err.Error()):
		return wire.Errorf(wire.CodeUnavailable, "audit stream %s is full, so nothing can be recorded: start auditd to drain it", wire.AuditStream)
	case errors.Is(err, context.DeadlineExceeded):
		return wire.Errorf(wire.CodeUnavailable, "audit stream %s did not acknowledge in time: check busd", wire.AuditStream)
	}
	return wire.Errorf(wire.CodeUnavailable, "audit event not recorded: %v", err)
}

// Steady reports whether the stream acked the last message Publish sent,
// no message PublishAsync sent since went unacked, and the connection has
// not been re-established since. A record whose ack goes elsewhere
// (PublishAckedTo) is sent once, never again: while not steady (a bus just
// restarted, a stream just elected, a failure), send it with Publish, which
// sends it again until the stream answers.
func (p *Publisher) Steady() bool {
	n := p.steady.Load()
	return n != 0 && n == p.js.Conn().Stats().Reconnects+1
}

// PublishAckedTo stamps ev and sends it alone, its JetStream ack going to
// subject instead of this process: for a record whose ack someone else
// awaits before acting (a check's caller, wire.HeaderRecordAck). An error
// means it was not even sent; whether it was stored only subject learns.
func (p *Publisher) PublishAckedTo(ev *wire.AuditEvent, subject string) error {
	msg, err := p.message(ev)
	if err != nil {
		return err
	}
	msg.Reply = subject
	msg.Header[jetstream.ExpectedStreamHeader] = []string{wire.AuditStream}
	if err := p.js.Conn().PublishMsg(msg); err != nil {
		return unrecorded(err)
	}
	return nil
}
