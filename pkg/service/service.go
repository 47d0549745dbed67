// Package service runs a moat daemon's endpoints on nats.go/micro, so `nats
// service list|info|stats|ping` inspects every daemon, and adds what every
// daemon needs the same way: bodies decoded by the wire codec (JSON in, JSON
// out), errors as Nats-Service-Error headers with stable codes, and requests
// answered concurrently with a bound.
//
// micro calls a handler one message at a time per subscription, so each request
// is handed to its own goroutine and answered from there. When MaxInflight
// requests are already running, the next is answered 503 at once instead of
// queueing behind them.
//
// The service owns those goroutines: each handler's context is cancelled
// (cause ErrStopped) when the service stops — at once by Stop, or by
// Shutdown once its own context ends — and neither returns before every
// handler has.
//
// An endpoint added with HandleKept keeps its answers a while (kept.go): a
// caller that lost one when the bus restarted gets the same message again,
// on its own reply subject only, and a request its caller sent again
// (wire.HeaderResent) is not handled twice — a request is handled once.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Config describes a daemon's service.
type Config struct {
	Name        string
	Version     string // semver
	Description string
	MaxInflight int // default 1024
	Logger      *slog.Logger
}

// Handler answers one request: a value to encode, or an error (a *wire.Error
// keeps its code; anything else is a 500).
type Handler func(ctx context.Context, req *Request) (any, error)

// Request is one decoded-on-demand request.
type Request struct {
	Subject   string
	Format    wire.Format
	Data      []byte
	RequestID string // Moat-Request-Id header, may be empty
	SessionID string // Moat-Session-Id header, may be empty
	reply     string
	nc        *nats.Conn
	hdr       nats.Header
	replyHdr  map[string]string
	detach    func() // gives the in-flight slot back, once
}

// ReplySubject is where the requester listens: the answer, and any interim
// messages, go there.
func (r *Request) ReplySubject() string { return r.reply }

// SetReplyHeader sets a header on the answer (not on an error reply).
func (r *Request) SetReplyHeader(key, value string) {
	if r.replyHdr == nil {
		r.replyHdr = map[string]string{}
	}
	r.replyHdr[key] = value
}

// Interim sends a header-only message to the requester before the answer
// (policyd uses it to say a person is being asked, so the caller waits
// longer). Send it only to requesters that asked for it: a plain request
// takes the first message as the answer.
func (r *Request) Interim(hdr map[string]string) error { return r.InterimReply(hdr, "") }

// InterimReply is Interim with a reply subject the requester may answer on
// (policyd's approval heartbeats: the caller acks or cancels there).
func (r *Request) InterimReply(hdr map[string]string, reply string) error {
	if r.reply == "" {
		return nil
	}
	msg := nats.NewMsg(r.reply)
	msg.Reply = reply
	for k, v := range hdr {
		msg.Header.Set(k, v)
	}
	if r.RequestID != "" {
		msg.Header.Set(wire.HeaderRequestID, r.RequestID)
	}
	return r.nc.PublishMsg(msg)
}

// FillIDs sets the body's request and session ids from the headers where
// the body left them empty.
func (r *Request) FillIDs(requestID, sessionID *string) {
	if *requestID == "" {
		*requestID = r.RequestID
	}
	if *sessionID == "" {
		*sessionID = r.SessionID
	}
}

// Detach gives the request's in-flight slot back before its handler
// returns: for a handler about to wait on something that is not work (a
// person's answer) under a bound of its own. Stop still waits for it.
func (r *Request) Detach() {
	if r.detach != nil {
		r.detach()
	}
}

// Header returns a request header.
func (r *Request) Header(key string) string { return r.hdr.Get(key) }

// Decode reads the body into v (strict; 400/413 on bad input).
func (r *Request) Decode(v any) error { return wire.Decode(r.Format, r.Data, v) }

// DecodeLimit is Decode with a body limit of the endpoint's own (a run
// request carries its command's stdin: wire.MaxRunRequestBytes).
func (r *Request) DecodeLimit(v any, limit int) error {
	return wire.DecodeLimit(r.Format, r.Data, v, limit)
}

// Service is a running micro service.
type Service struct {
	ctx   context.Context // every handler's; cancelled by Stop or Shutdown's end
	end   context.CancelCauseFunc
	nc    *nats.Conn
	svc   micro.Service
	id    string // svc's, kept: micro builds a whole Info to tell it
	cfg   Config
	log   *slog.Logger
	sem   chan struct{}
	mu    sync.Mutex
	busy  int           // handlers running
	idle  chan struct{} // closed when busy drops to 0 (made by Shutdown while it waits)
	shut  bool          // contexts cancelled: no handler starts any more
	subs  int           // subscriptions micro holds for this service on nc
	unsub sync.Once     // the first Shutdown unsubscribes and waits for the drain
	kept  *kept         // answers sent again on a caller's resume (kept.go), nil unless Resumable
	ended sync.Once     // the first Shutdown to see every handler return ends the resumes
	done  atomic.Uint64
	errs  sync.Map // code (int) → *atomic.Uint64
}

// New registers the service on nc. Set nc's handlers before calling it: micro
// wraps them. From New on, the instance answers $SRV.PING, which `moat
// status` and the tests take for ready: a daemon does its slow setup
// (buckets, stores) before New and adds its endpoints right after it.
func New(nc *nats.Conn, cfg Config) (*Service, error) {
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = 1024
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Service{nc: nc, cfg: cfg, log: cfg.Logger, sem: make(chan struct{}, cfg.MaxInflight)}
	s.ctx, s.end = context.WithCancelCause(context.Background())
	before := nc.NumSubscriptions()
	svc, err := micro.AddService(nc, micro.Config{
		Name:         cfg.Name,
		Version:      cfg.Version,
		Description:  cfg.Description,
		QueueGroup:   wire.DefaultQueueGroup,
		StatsHandler: func(*micro.Endpoint) any { return s.stats() },
	})
	if err != nil {
		return nil, fmt.Errorf("register service %s: %w", cfg.Name, err)
	}
	s.svc, s.id = svc, svc.Info().ID
	s.subs = nc.NumSubscriptions() - before
	return s, nil
}

// ID is this instance's id, as `nats service info` shows it.
func (s *Service) ID() string { return s.id }

// Handle serves subject with h under the endpoint name, in the queue group:
// one copy of the service answers each request.
func (s *Service) Handle(name, subject string, h Handler) error {
	return s.handle(name, subject, h, false, false)
}

// HandleAll serves subject with h outside the queue group: every copy
// answers, and the caller gathers the answers.
func (s *Service) HandleAll(name, subject string, h Handler) error {
	return s.handle(name, subject, h, false, true)
}

// errNotResumable: HandleKept before Resumable.
var errNotResumable = errors.New("an endpoint keeps answers only on a resumable service: call Resumable first")

func (s *Service) handle(name, subject string, h Handler, keep, all bool) error {
	opts := []micro.EndpointOpt{micro.WithEndpointSubject(subject)}
	if all {
		opts = append(opts, micro.WithEndpointQueueGroupDisabled())
	}
	return s.added(s.nc.NumSubscriptions(), s.svc.AddEndpoint(name, micro.HandlerFunc(func(r micro.Request) { s.dispatch(r, h, keep) }), opts...))
}

// added makes sure the bus has the endpoint's subscription before the
// daemon says it is ready: a request sent right after would find nobody.
func (s *Service) added(before int, err error) error {
	if err != nil {
		return err
	}
	s.subs += s.nc.NumSubscriptions() - before
	return s.nc.Flush()
}

// ErrStopped is the cause of a handler's context cancelled because its
// service stops.
var ErrStopped = errors.New("the service is stopping")

// Stop unsubscribes (no new requests), cancels the contexts of the
// requests in flight and waits for their handlers to return.
func (s *Service) Stop() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return s.Shutdown(ctx)
}

// Shutdown unsubscribes (no new requests) and lets the requests in flight
// finish until ctx ends; then it cancels their contexts. It returns once
// every handler has. A daemon that must finish what it started (policyd's
// checks, sandboxd's runs within its drain) shuts down with the bound it
// keeps.
func (s *Service) Shutdown(ctx context.Context) error {
	var err error
	s.unsub.Do(func() {
		left := s.nc.NumSubscriptions() - s.subs
		err = s.svc.Stop()
		s.drained(ctx, left)
	})
	select {
	case <-s.whenIdle(false):
	case <-ctx.Done():
	}
	<-s.whenIdle(true)
	s.ended.Do(func() {
		if s.kept != nil {
			s.kept.sub.Unsubscribe()
		}
	})
	return err
}

// drainWait bounds the wait for micro's subscriptions to drain, in case
// another part of the daemon subscribes meanwhile and the count misleads.
// A drain takes nats.go one flush and up to 100 ms.
const drainWait = 2 * time.Second

// drained waits until micro's subscriptions, draining, have handed over
// every request the bus routed to this copy before it unsubscribed:
// nats.go removes a draining subscription once the handler of its last
// message has returned, so the connection is back to left subscriptions
// then. Those requests are then served like the rest, neither refused as
// stopping nor dropped when the daemon closes its connection.
func (s *Service) drained(ctx context.Context, left int) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	bound := time.NewTimer(drainWait)
	defer bound.Stop()
	for s.nc.NumSubscriptions() > left && !s.nc.IsClosed() {
		select {
		case <-ctx.Done():
			return
		case <-bound.C:
			s.log.Warn("the service's subscriptions did not drain in time: requests still queued are answered 503", "service", s.cfg.Name, "waited", drainWait)
			return
		case <-tick.C:
		}
	}
}

// whenIdle is closed once no handler runs; shut first cancels every
// handler's context and lets none start any more.
func (s *Service) whenIdle(shut bool) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if shut && !s.shut {
		s.shut = true
		s.end(ErrStopped)
	}
	if s.busy == 0 {
		c := make(chan struct{})
		close(c)
		return c
	}
	if s.idle == nil {
		s.idle = make(chan struct{})
	}
	return s.idle
}

// begin counts a handler in, unless the service has shut.
func (s *Service) begin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shut {
		return false
	}
	s.busy++
	return true
}

func (s *Service) finish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy--; s.busy == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
}

func (s *Service) dispatch(r micro.Request, h Handler, keep bool) {
	hdr := nats.Header(r.Headers())
	req := &Request{
		Subject:   r.Subject(),
		Format:    wire.DetectFormat(hdr.Get(wire.HeaderContentType), r.Data()),
		Data:      r.Data(),
		RequestID: hdr.Get(wire.HeaderRequestID),
		SessionID: hdr.Get(wire.HeaderSessionID),
		reply:     r.Reply(),
		nc:        s.nc,
		hdr:       hdr,
	}
	if err := checkIDs(req); err != nil {
		s.reply(r.Reply(), req, nil, err)
		return
	}
	if keep && s.kept.again(req) {
		// Sent again, and handled or answered here: before the room is
		// counted, whose 503 the caller would take for the answer.
		return
	}
	select {
	case s.sem <- struct{}{}:
	default:
		s.reply(r.Reply(), req, nil, wire.Errorf(wire.CodeUnavailable,
			"%s is busy with %d requests: retry, or start another copy", s.cfg.Name, s.cfg.MaxInflight))
		return
	}
	var once sync.Once
	req.detach = func() { once.Do(func() { <-s.sem }) }
	if !s.begin() {
		req.Detach()
		s.reply(r.Reply(), req, nil, wire.Errorf(wire.CodeUnavailable, "%s is stopping: retry, another copy may answer", s.cfg.Name))
		return
	}
	if keep && !s.kept.start(req) { // sent again, and handled here already
		req.Detach()
		s.finish()
		return
	}
	go func() {
		GrowStack() // a handler's work is deep: one growth instead of several
		defer s.finish()
		defer req.Detach()
		v, err := s.run(h, req)
		msg := s.answer(r.Reply(), req, v, err)
		if keep { // kept before it is sent: a resume it prompts finds it
			s.kept.keep(req, msg)
		}
		s.send(req, msg)
	}()
}

// checkIDs refuses request and session ids in headers that could not be
// used (too long, spaces, control bytes) before any handler sees them.
func checkIDs(req *Request) error {
	if err := wire.CheckID("the "+wire.HeaderRequestID+" header", req.RequestID); err != nil {
		req.RequestID = ""
		return err
	}
	if err := wire.CheckID("the "+wire.HeaderSessionID+" header", req.SessionID); err != nil {
		req.SessionID = ""
		return err
	}
	return nil
}

func (s *Service) run(h Handler, req *Request) (v any, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("handler panic", "subject", req.Subject, "panic", p, "stack", string(debug.Stack()))
			v, err = nil, wire.Errorf(wire.CodeInternal, "internal error in %s: the failure is logged", s.cfg.Name)
		}
	}()
	return h(s.ctx, req)
}

// replyHeadroom is what a reply's headers may take beside its body.
const replyHeadroom = 4 << 10

// reply answers on the request's reply subject directly (not through micro's
// Request, whose error bookkeeping is not safe from another goroutine).
func (s *Service) reply(to string, req *Request, v any, err error) {
	s.send(req, s.answer(to, req, v, err))
}

// send publishes msg, the answer to req; nil is nobody to answer.
func (s *Service) send(req *Request, msg *nats.Msg) {
	if msg == nil {
		return
	}
	if err := s.nc.PublishMsg(msg); err != nil {
		s.log.Warn("reply failed", "subject", req.Subject, "err", err)
	}
}

// answer counts req answered and builds its answer to to: v, or err as a
// wire error. It returns nil when there is nobody to answer.
func (s *Service) answer(to string, req *Request, v any, err error) *nats.Msg {
	s.done.Add(1)
	if to == "" {
		return nil
	}
	msg := nats.NewMsg(to)
	msg.Header.Set(wire.HeaderContentType, req.Format.ContentType())
	if req.RequestID != "" {
		msg.Header.Set(wire.HeaderRequestID, req.RequestID)
	}
	if err == nil {
		body, encErr := wire.Encode(req.Format, v)
		switch max := s.nc.MaxPayload() - replyHeadroom; {
		case encErr != nil:
			err = fmt.Errorf("encode reply: %w", encErr)
		case int64(len(body)) > max:
			err = wire.Errorf(wire.CodeInternal, "the answer is %d bytes, over the bus's limit of %d: ask for less (a smaller page or limit)", len(body), max)
		default:
			msg.Data = body
			for k, v := range req.replyHdr {
				msg.Header.Set(k, v)
			}
		}
	}
	if err != nil {
		var we *wire.Error
		if !errors.As(err, &we) {
			s.log.Error("request failed", "subject", req.Subject, "request_id", req.RequestID, "err", err)
			we = &wire.Error{Code: wire.CodeOf(err), Message: err.Error()}
		}
		s.countError(we.Code)
		msg.Header.Set(wire.HeaderErrorCode, strconv.Itoa(we.Code))
		msg.Header.Set(wire.HeaderError, we.Message)
		msg.Data, _ = wire.Encode(req.Format, wire.ErrorBody{Error: we})
	}
	return msg
}

func (s *Service) countError(code int) {
	c, _ := s.errs.LoadOrStore(code, new(atomic.Uint64))
	c.(*atomic.Uint64).Add(1)
}

// stats is the data `nats service stats` shows for each endpoint.
func (s *Service) stats() map[string]any {
	errs := map[string]uint64{}
	s.errs.Range(func(k, v any) bool {
		errs[strconv.Itoa(k.(int))] = v.(*atomic.Uint64).Load()
		return true
	})
	return map[string]any{
		"answered":     s.done.Load(),
		"in_flight":    len(s.sem),
		"max_inflight": s.cfg.MaxInflight,
		"errors":       errs,
	}
}
