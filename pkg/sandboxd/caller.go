package sandboxd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moatsec/moat/pkg/service"
	"github.com/moatsec/moat/pkg/truncate"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// errCallerCancelled and errCallerGone are the causes of a run's context
// when its caller stopped it; the run's record and result name them.
var (
	errCallerCancelled = errors.New("the caller cancelled the run")
	errCallerGone      = errors.New("the caller went away (its connection closed)")
	errCallerSilent    = fmt.Errorf("the caller answered no heartbeat for %s", wire.RunCallerSilence)
)

// callers routes what callers send on their runs' control subjects over
// one subscription (a subscription per run would cost a SUB, an UNSUB and a
// goroutine each): subjects <prefix>.<token>, one token per run.
//
// A run's resume is its caller's alone: runs are found for
// wire.SubjectRunResume by the reply subject of their request *and* its
// request id. The reply subject is under the caller connection's private
// inbox, which no other connection can read; a request id is not secret
// (audit records carry it). So a request from another connection under the
// same id — refused with 409 once it comes to its claim, but watched until
// then — is kept beside the first caller's run, never in its place, and its
// end takes away only its own entry. Requests of one caller under one id
// (the same request sent twice, the second answered 409) may be watched at
// once: a resume sends each of them a heartbeat, all to that caller.
type callers struct {
	nc     *nats.Conn
	once   sync.Once
	err    error
	prefix string
	mu     sync.Mutex
	runs   map[string]*caller   // by control token
	byKey  map[runKey][]*caller // by reply subject and request id, for wire.SubjectRunResume
}

// runKey names the runs a resume is for: their request's reply subject and
// request id.
type runKey struct{ reply, requestID string }

func (cs *callers) subscribe() error {
	cs.once.Do(func() {
		cs.prefix = cs.nc.NewInbox() + "."
		cs.runs, cs.byKey = map[string]*caller{}, map[runKey][]*caller{}
		_, cs.err = cs.nc.Subscribe(cs.prefix+"*", func(m *nats.Msg) {
			cs.mu.Lock()
			c := cs.runs[m.Subject[len(cs.prefix):]]
			cs.mu.Unlock()
			if c != nil {
				c.control(m)
			}
		})
		if cs.err == nil {
			_, cs.err = cs.nc.Subscribe(wire.SubjectRunResume, cs.resume)
		}
	})
	return cs.err
}

// resume hears a caller that lost word of its run (wire.SubjectRunResume):
// receiving it lets this connection publish on its reply subject again. A
// run of that request id for that very reply subject sends a heartbeat at
// once; anything else is ignored — nothing is sent but to the reply subject
// of the run's own request.
func (cs *callers) resume(m *nats.Msg) {
	if m.Reply == "" {
		return
	}
	cs.mu.Lock()
	runs := append([]*caller(nil), cs.byKey[runKey{m.Reply, m.Header.Get(wire.HeaderRequestID)}]...)
	cs.mu.Unlock()
	for _, c := range runs {
		c.heartbeat()
	}
}

// caller is the requester of one run, as the run protocol sees it (see
// pkg/wire/run.go): it hears heartbeats, output chunks and the result on its
// own reply subject, and answers on the run's control subject.
//
// A caller that did not accept interim messages (a plain request, e.g.
// `nats req`) gets no heartbeats and no chunks: the result carries the
// output, cut to fit the bus.
type caller struct {
	nc        *nats.Conn
	reply     string
	requestID string
	protocol  bool // the caller accepts interim messages

	cs      *callers
	token   string
	ctlSubj string
	lastAck atomic.Int64 // unix nanoseconds
	cancel  context.CancelCauseFunc
	chunks  atomic.Int64
	sig     runSignals // what the caller passes on to the command (signal.go)

	stop chan struct{}
	wg   sync.WaitGroup
}

// firstHeartbeat is when a run's first heartbeat goes out: late enough that
// a short run (most are) costs no heartbeat and no ack, soon enough that a
// cancel, which waits for it, still stops the run well within a second. A
// variable only so that a test can hold the run's own heartbeats back and
// see which come from a resume (export_test.go).
var firstHeartbeat = 250 * time.Millisecond

// start begins watching the caller of req: heartbeats while the returned
// context lives; the context is cancelled, with the reason as its cause,
// when the caller cancels or goes away. Call close when the run is over.
func (cs *callers) start(ctx context.Context, req *service.Request, requestID string) (*caller, context.Context, error) {
	c := &caller{nc: cs.nc, cs: cs, reply: req.ReplySubject(), requestID: requestID, stop: make(chan struct{})}
	c.protocol = req.Header(wire.HeaderAcceptInterim) != "" && c.reply != ""
	ctx, c.cancel = context.WithCancelCause(ctx)
	if !c.protocol {
		return c, ctx, nil
	}
	if err := cs.subscribe(); err != nil {
		c.cancel(err)
		return nil, nil, fmt.Errorf("listen for the caller: %w", err)
	}
	c.token = wire.NewToken() // not a NUID: one control subject seen gives away no other
	c.ctlSubj = cs.prefix + c.token
	cs.mu.Lock()
	cs.runs[c.token] = c
	key := runKey{c.reply, requestID}
	cs.byKey[key] = append(cs.byKey[key], c)
	cs.mu.Unlock()
	c.lastAck.Store(time.Now().UnixNano())
	c.wg.Add(1)
	go c.watch()
	return c, ctx, nil
}

// control handles what arrives on the control subject: acks, a signal, a
// cancel, or the bus's no-responders status for a heartbeat nobody received.
func (c *caller) control(m *nats.Msg) {
	switch {
	case m.Header.Get("Status") == "503":
		c.cancel(errCallerGone)
	case m.Header.Get(wire.HeaderCancel) != "":
		c.cancel(fmt.Errorf("%w: %s", errCallerCancelled, truncate.String(m.Header.Get(wire.HeaderCancel), 200)))
	case m.Header.Get(wire.HeaderSignal) != "":
		c.signal(m.Header.Get(wire.HeaderSignal))
	case m.Header.Get(wire.HeaderHeartbeat) == wire.HeartbeatAck:
		c.lastAck.Store(time.Now().UnixNano())
	}
}

// watch sends heartbeats and cancels the run when acks stop coming.
func (c *caller) watch() {
	defer c.wg.Done()
	first := time.NewTimer(firstHeartbeat)
	defer first.Stop()
	select {
	case <-c.stop:
		return
	case <-first.C:
	}
	c.lastAck.Store(time.Now().UnixNano())
	c.heartbeat()
	t := time.NewTicker(wire.RunHeartbeat)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			if time.Since(time.Unix(0, c.lastAck.Load())) > wire.RunCallerSilence {
				c.cancel(errCallerSilent)
			}
			c.heartbeat()
		}
	}
}

func (c *caller) heartbeat() {
	m := nats.NewMsg(c.reply)
	m.Reply = c.ctlSubj
	m.Header.Set(wire.HeaderHeartbeat, "1")
	c.nc.PublishMsg(m)
}

// close stops the heartbeats and the control subject; resumes for the run
// find it no more (and still find any other under the same key).
func (c *caller) close() {
	if c.protocol {
		close(c.stop)
		c.wg.Wait()
		c.cs.mu.Lock()
		delete(c.cs.runs, c.token)
		key := runKey{c.reply, c.requestID}
		if rest := slices.DeleteFunc(c.cs.byKey[key], func(o *caller) bool { return o == c }); len(rest) > 0 {
			c.cs.byKey[key] = rest
		} else {
			delete(c.cs.byKey, key)
		}
		c.cs.mu.Unlock()
	}
	c.cancel(nil)
}

// output is where a stream's output goes as chunks, or nil when the caller
// takes the output in the result.
func (c *caller) output(stream string) *chunker {
	if !c.protocol {
		return nil
	}
	return &chunker{c: c, stream: stream}
}

// send publishes output as chunks of at most wire.RunChunkBytes.
func (c *caller) send(stream string, p []byte) error {
	for off := 0; off < len(p); off += wire.RunChunkBytes {
		m := nats.NewMsg(c.reply)
		m.Header.Set(wire.HeaderStream, stream)
		m.Data = append([]byte(nil), p[off:min(off+wire.RunChunkBytes, len(p))]...)
		if err := c.nc.PublishMsg(m); err != nil {
			return fmt.Errorf("send output: %w", err)
		}
		c.chunks.Add(1)
	}
	return nil
}

// finish shapes the result for the caller: the output, unless it went
// live, goes out in chunks before it, and the result says how many chunks
// there were; for a plain requester the output is cut to fit the bus.
func (c *caller) finish(req *service.Request, res *wire.RunResult, live bool) {
	if !c.protocol {
		room := int(c.nc.MaxPayload()-resultHeadroom) / 2
		if req.Format == wire.JSON {
			room = room / 4 * 3 // base64
		}
		if len(res.Stdout) > room {
			res.Stdout, res.StdoutTruncated = res.Stdout[:room], true
		}
		if len(res.Stderr) > room {
			res.Stderr, res.StderrTruncated = res.Stderr[:room], true
		}
		return
	}
	if !live {
		c.send(wire.StreamStdout, res.Stdout)
		c.send(wire.StreamStderr, res.Stderr)
	}
	res.Stdout, res.Stderr = nil, nil
	req.SetReplyHeader(wire.HeaderChunks, strconv.FormatInt(c.chunks.Load(), 10))
}

// resultHeadroom is what a result takes beside its output.
const resultHeadroom = 64 << 10

// chunker is an io.Writer that sends what the command writes as chunks.
type chunker struct {
	c      *caller
	stream string
}

func (w *chunker) Write(p []byte) (int, error) {
	if err := w.c.send(w.stream, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
