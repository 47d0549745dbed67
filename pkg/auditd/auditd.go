// Package auditd is the auditd daemon: it drains the MOAT_AUDIT stream into
// the audit store and answers moat.audit.query, moat.audit.verify and
// moat.audit.stats.
//
// Delivery without loss: auditd reads MOAT_AUDIT through the durable pull
// consumer "auditd" with explicit acks, and acks a batch only after the store
// has fsynced it. Killed at any moment, it loses nothing: what was not acked
// is delivered again (after AckWait), and the store keeps each event id once.
//
// Nothing is repaired by deletion: a damaged store, or one that does not
// reach its anchor (the latest checkpoint, kept outside the store by
// [Anchor]), is opened read-only (see [OpenStore]); the daemon then drains
// nothing and keeps answering queries, verify and stats.
//
// Events are stored in blocks that gather for up to Linger (group commit,
// for the compression); a query first has everything the stream held when
// it was asked stored (upToDate), so it sees every event acked before it.
//
// The drain is the daemon's one goroutine: Stop cancels it and waits for
// it, so the store may be closed once Stop returns.
package auditd

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moatsec/moat/pkg/audit"
	"github.com/moatsec/moat/pkg/audit/store"
	"github.com/moatsec/moat/pkg/service"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Version is auditd's service version.
const Version = "0.1.0"

// Consumer is the durable consumer auditd reads MOAT_AUDIT through.
const Consumer = "auditd"

// AckWait is how long JetStream waits for auditd's ack before it delivers
// an event again. store.DefaultGapWait outlasts it several times over.
const AckWait = 30 * time.Second

// Config configures the daemon.
type Config struct {
	Store     *store.Store
	Sanitizer *audit.Sanitizer
	PublicKey ed25519.PublicKey // checks checkpoints in verify
	Logger    *slog.Logger
	// Batch is the most messages in a block (default 1024); a fetch asks
	// for twice as many.
	Batch int
	// FetchWait is how long one fetch stays open (default 500 ms, at most
	// MaxFetchWait); Stop waits for the open one.
	FetchWait time.Duration
	// Linger is how long messages wait for others to share their block
	// (default Linger, at most MaxLinger; see drain.go).
	Linger time.Duration
	// Anchor keeps the store's latest checkpoint outside it, for verify;
	// nil: none.
	Anchor *Anchor
	// ReadOnly serves query, verify and stats from a store that could not
	// open for writing (damage, or a store behind its anchor: a person
	// must repair it), and Problem says why: nothing is drained, so events
	// wait in the stream.
	ReadOnly bool
	Problem  string
}

// Daemon drains the stream and serves queries.
type Daemon struct {
	cfg     Config
	nc      *nats.Conn
	cons    jetstream.Consumer // nil when read-only
	js      jetstream.JetStream
	flush   chan struct{} // a query asks the drain to store what it gathered
	drained chan struct{} // closed when the drain has ended
	storing atomic.Bool   // a block is being stored
	begun   atomic.Uint64 // blocks begun to be stored
	low     atomic.Uint64 // the lowest stream sequence of the latest block begun
	commits struct {
		sync.Mutex
		ch chan struct{} // closed, and made anew, at each block stored
	}
	svc     *service.Service
	log     *slog.Logger
	stopped chan error
	cancel  context.CancelFunc // ends the drain
	wg      sync.WaitGroup     // the drain
}

// Start creates (or finds) the consumer, starts draining and serves
// (read-only: serves only). Stopped reports a failure that stops the drain
// (a store that cannot write): the daemon must exit and be restarted.
func Start(ctx context.Context, nc *nats.Conn, cfg Config) (*Daemon, error) {
	if cfg.Batch <= 0 {
		cfg.Batch = 1024
	}
	if cfg.FetchWait <= 0 {
		cfg.FetchWait = 500 * time.Millisecond
	}
	cfg.FetchWait = min(cfg.FetchWait, MaxFetchWait)
	if cfg.Linger <= 0 {
		cfg.Linger = Linger
	}
	cfg.Linger = min(cfg.Linger, MaxLinger)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var cons jetstream.Consumer
	if !cfg.ReadOnly {
		var err error
		if cons, err = consumer(ctx, nc); err != nil {
			return nil, err
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, nc: nc, cons: cons, js: js, flush: make(chan struct{}, 1), drained: make(chan struct{}),
		log: cfg.Logger, stopped: make(chan error, 1)}
	d.commits.ch = make(chan struct{})
	svc, err := service.New(nc, service.Config{Name: wire.ServiceAuditd, Version: Version, Logger: cfg.Logger,
		Description: "keeps the sanitized, compressed, tamper-evident audit store"})
	if err != nil {
		return nil, err
	}
	d.svc = svc
	for _, ep := range []struct {
		name, subject string
		h             service.Handler
	}{{"query", wire.SubjectAuditQuery, d.query}, {"verify", wire.SubjectAuditVerify, d.verify}, {"stats", wire.SubjectAuditStats, d.stats}} {
		if err := svc.Handle(ep.name, ep.subject, ep.h); err != nil {
			svc.Stop()
			return nil, err
		}
	}
	if !cfg.ReadOnly {
		dctx, cancel := context.WithCancel(ctx)
		d.cancel = cancel
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.drain(dctx)
		}()
	}
	return d, nil
}

// jetStreamStarting reports an error of a JetStream that cannot answer yet:
// a cluster still electing its leaders drops requests (a timeout) or
// answers 503; both pass once the servers agree.
func jetStreamStarting(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.As(err, &apiErr) && apiErr.Code == 503
}

// consumer creates (or finds) auditd's durable consumer on MOAT_AUDIT.
func consumer(ctx context.Context, nc *nats.Conn) (jetstream.Consumer, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	var cons jetstream.Consumer
	// busd creates the stream just after it starts to accept connections:
	// an auditd started beside it (foreman) waits for it.
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		actx, acancel := context.WithTimeout(cctx, 2*time.Second)
		cons, err = js.CreateOrUpdateConsumer(actx, wire.AuditStream, jetstream.ConsumerConfig{
			Durable: Consumer, AckPolicy: jetstream.AckExplicitPolicy, AckWait: AckWait,
			MaxAckPending: 1 << 20, DeliverPolicy: jetstream.DeliverAllPolicy,
			Description: "auditd: acked only once stored and fsynced",
		})
		acancel()
		if err == nil {
			break
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) && !jetStreamStarting(err) {
			return nil, fmt.Errorf("consumer %s on %s: %w", Consumer, wire.AuditStream, err)
		}
		select {
		case <-cctx.Done():
			return nil, fmt.Errorf("stream %s not found after 30s: start busd (it creates the stream) and point auditd at it", wire.AuditStream)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return cons, nil
}

// ID is this instance's service id.
func (d *Daemon) ID() string { return d.svc.ID() }

// Stopped reports a failure that ended the drain.
func (d *Daemon) Stopped() <-chan error { return d.stopped }

// Stop ends the drain, waits for it (a batch being stored is finished and
// acked), then stops serving: the store may be closed once Stop returns.
func (d *Daemon) Stop() error {
	if d.cancel != nil {
		d.cancel()
	}
	d.wg.Wait()
	return d.svc.Shutdown(context.Background())
}

// events appends the events of one message: an event alone, or each event
// of a batch (Moat-Kind audit.batch; docs/bus.md). What is not an event is
// kept as an audit.malformed event rather than dropped; a batch's events
// keep their own ids, so a batch delivered again after a crash (some of it
// stored, its ack lost) stores nothing twice.
func (d *Daemon) events(evs []*wire.AuditEvent, m jetstream.Msg) []*wire.AuditEvent {
	id := m.Headers().Get(wire.HeaderMsgID)
	if m.Headers().Get(wire.HeaderKind) != wire.KindAuditBatch {
		return append(evs, d.event(m, m.Data(), id))
	}
	bodies, err := audit.SplitBatch(m.Data())
	if err != nil {
		return append(evs, d.malformed(m, id, "batch: "+err.Error()))
	}
	for i, b := range bodies {
		evs = append(evs, d.event(m, b, id+"#"+strconv.Itoa(i)))
	}
	return evs
}

// event decodes and sanitizes one event's body; id names it if it is
// malformed.
func (d *Daemon) event(m jetstream.Msg, body []byte, id string) *wire.AuditEvent {
	var ev wire.AuditEvent
	if err := wire.Decode(wire.DetectFormat(m.Headers().Get(wire.HeaderContentType), body), body, &ev); err != nil || ev.ID == "" {
		reason := "no event id"
		if err != nil {
			reason = err.Error()
		}
		return d.malformed(m, id, reason)
	}
	d.cfg.Sanitizer.Event(&ev)
	return &ev
}

// malformed records what could not be read, under id (a fresh one if the
// message named none).
func (d *Daemon) malformed(m jetstream.Msg, id, reason string) *wire.AuditEvent {
	if id == "" || id[0] == '#' {
		id = wire.NewID()
	}
	return &wire.AuditEvent{ID: id, TS: time.Now().UTC(), Source: "auditd", Kind: wire.KindAuditMalformed,
		Detail: map[string]any{"subject": m.Subject(), "error": reason, "bytes": len(m.Data())}}
}

func (d *Daemon) query(ctx context.Context, req *service.Request) (any, error) {
	var q wire.AuditQuery
	if err := req.Decode(&q); err != nil {
		return nil, err
	}
	d.upToDate(ctx)
	return d.cfg.Store.Query(q)
}

func (d *Daemon) verify(ctx context.Context, req *service.Request) (any, error) {
	var anchor *store.Checkpoint
	if d.cfg.Anchor != nil {
		var err error
		if anchor, err = d.cfg.Anchor.Get(ctx); err != nil {
			return &wire.AuditVerifyReport{Problem: &wire.AuditProblem{Reason: err.Error() + ": the store cannot be checked against it"}}, nil
		}
	}
	return d.cfg.Store.Verify(d.cfg.PublicKey, anchor)
}

func (d *Daemon) stats(ctx context.Context, req *service.Request) (any, error) {
	st := wire.AuditStats{AuditStoreStats: d.cfg.Store.Stats(), Instance: d.svc.ID(), Consuming: d.cons != nil}
	if dmg := d.cfg.Store.Damage(); dmg != nil {
		st.Problem = dmg.Error()
	} else if d.cfg.Problem != "" {
		st.Problem = d.cfg.Problem
	}
	ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if d.cons == nil {
		// Read-only: no consumer; the work-queue stream holds exactly the
		// messages not yet stored.
		if s, err := d.js.Stream(ictx, wire.AuditStream); err == nil {
			st.Lag = s.CachedInfo().State.Msgs
		}
		return st, nil
	}
	if info, err := d.cons.Info(ictx); err == nil {
		st.Lag = info.NumPending + uint64(info.NumAckPending)
	}
	return st, nil
}
