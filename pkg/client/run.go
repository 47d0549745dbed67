package client

import (
	"context"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// RunSilence is how long Run waits without a word from sandboxd before
// deciding it is gone. It is counted in heartbeat periods the caller itself
// lived through, so a caller that was paused (SIGSTOP, a machine asleep)
// does not take its own pause for sandboxd's silence.
const RunSilence = 15 * time.Second

// CancelGrace is how long Run, once its context is done, waits for the
// result that says how the cancelled run ended.
const CancelGrace = 5 * time.Second

// Run asks sandboxd to resolve, check and run a command, and waits for the
// result, speaking the run protocol (pkg/wire/run.go): it answers
// heartbeats, so sandboxd knows the caller is there, and gathers the output
// chunks. When output is set and req.Stream is true, output receives the
// output live ("stdout" or "stderr") and the result's Stdout and Stderr stay
// empty; otherwise the result holds them, byte for byte up to the profile's
// cap.
//
// When ctx is done, Run cancels the run — sandboxd kills its whole process
// tree — and returns the result saying so (Cancelled), or a 408 when none
// comes within CancelGrace. A denial is a result with a deny decision, not
// an error; errors are *wire.Error (503 no sandboxd, 500 the sandbox
// refused or output was lost).
func (c *Client) Run(ctx context.Context, req *wire.RunRequest, output func(stream string, data []byte)) (*wire.RunResult, error) {
	return c.RunWaiting(ctx, req, output, nil)
}

// RunWaiting is Run that tells waiting, about every second, while a person
// is asked whether the command may run (who may answer, why, until when).
func (c *Client) RunWaiting(ctx context.Context, req *wire.RunRequest, output func(stream string, data []byte), waiting func(wire.ApprovalWait)) (*wire.RunResult, error) {
	return c.RunSignaled(ctx, req, output, waiting, nil)
}

// RunSignaled is RunWaiting that passes each signal from signals on to the
// command (signal.go): what a terminal or a supervisor sends `moat run`
// reaches the command first, which then ends as it would outside moat.
func (c *Client) RunSignaled(ctx context.Context, req *wire.RunRequest, output func(stream string, data []byte), waiting func(wire.ApprovalWait), signals <-chan os.Signal) (*wire.RunResult, error) {
	if req.RequestID == "" {
		req.RequestID = wire.NewID()
	}
	body, err := wire.Encode(wire.Msgpack, req)
	if err != nil {
		return nil, err
	}
	ctl := &runControl{nc: c.nc}
	reply, q, done, err := c.replies(ctl.tap)
	if err != nil {
		return nil, err
	}
	defer done()
	msg := nats.NewMsg(wire.SubjectRun)
	msg.Reply, msg.Data = reply, body
	msg.Header.Set(wire.HeaderContentType, wire.ContentMsgpack)
	msg.Header.Set(wire.HeaderRequestID, req.RequestID)
	msg.Header.Set(wire.HeaderAcceptInterim, "1")
	if dl, ok := ctx.Deadline(); ok { // a queued run waits no longer
		msg.Header.Set(wire.HeaderDeadline, dl.UTC().Format(time.RFC3339Nano))
	}
	if req.SessionID != "" {
		msg.Header.Set(wire.HeaderSessionID, req.SessionID)
	}
	if err := c.nc.PublishMsg(msg); err != nil {
		return nil, wire.Errorf(wire.CodeUnavailable, "cannot reach sandboxd: %v", err)
	}
	// The cancel goes out as soon as the context ends, even while output()
	// blocks (a slow terminal): the run must not outlive its caller's wish.
	stopCancel := context.AfterFunc(ctx, func() { ctl.cancel(context.Cause(ctx).Error()) })
	defer stopCancel()
	defer ctl.forward(signals)()
	r := &runReader{c: c, live: req.Stream && output != nil, output: output, waiting: waiting}
	tick := time.NewTicker(wire.RunHeartbeat)
	defer tick.Stop()
	cancelled := ctx.Done()
	var grace <-chan time.Time
	quiet := time.Duration(0)
	reconnects := c.nc.Stats().Reconnects
	again := false // the request reached no sandboxd, and goes out again
	sentAt, backAt := reconnects, time.Time{}
	var pending *nats.Msg
	for {
		m := pending
		if pending = nil; m == nil {
			m = q.next()
		}
		if m == nil {
			select {
			case <-q.ready:
			case <-tick.C:
				// One tick per period lived: a paused caller sees one, not many.
				if quiet += wire.RunHeartbeat; quiet >= RunSilence {
					return nil, wire.Errorf(wire.CodeUnavailable, "no word from sandboxd for %s: either it died (its runs died with it) or the bus lost its answer after a failover (the run may have finished); `moat audit query --request %s` says how it ended, and the same request id never runs twice", RunSilence, req.RequestID)
				}
				if again {
					again = false
					if err := c.nc.PublishMsg(msg); err != nil {
						return nil, wire.Errorf(wire.CodeUnavailable, "send the run again after the bus came back: %v: nothing ran", err)
					}
					continue
				}
				// The bus may have lost sandboxd's right to answer us (a
				// restart, a failover): say where we listen (resume.go).
				if n := c.nc.Stats().Reconnects; n != reconnects || quiet >= wire.RunResumeAfter {
					reconnects = n
					r.resume(msg)
				}
				if quiet >= RunAskAudit {
					if res, err := r.ended(ctx, req.RequestID); res != nil || err != nil {
						// An answer that came meanwhile says more.
						if pending = q.next(); pending == nil {
							return res, err
						}
					}
				}
			case <-cancelled:
				cancelled, grace = nil, time.After(CancelGrace)
			case <-grace:
				return nil, wire.Errorf(wire.CodeTimeout, "gave up waiting for the cancelled run (%v): sandboxd did not confirm; the audit trail says how it ended", ctx.Err())
			}
			continue
		}
		if m.Header.Get("Status") == "503" && r.resumed {
			// Nobody heard the resume yet (sandboxd not back): keep waiting.
			continue
		}
		if n := c.nc.Stats().Reconnects; n != sentAt {
			// Seen here as well as by cameBack, whose mark the
			// connection's handler sets on a goroutine of its own.
			sentAt, backAt = n, time.Now()
		}
		if m.Header.Get("Status") == "503" && (cameBack(c.nc) || time.Since(backAt) < RestartGrace) {
			// The request's own no-responders status as the connection
			// came back (no resume went out yet): no sandboxd received
			// it, none being back, so it goes out again at the next tick
			// — safely: nothing has it. Past RestartGrace the status
			// means what it says.
			again = true
			continue
		}
		quiet = 0
		if res, final, err := r.read(m); final {
			return res, err
		}
	}
}

// runControl is the caller's side of a run's control subject. Heartbeats
// are acked as they arrive, on the subscription's goroutine, so a caller
// whose reader is slow (output to a paused pager) is still known to be
// alive; one that is stopped or gone is not.
type runControl struct {
	nc   *nats.Conn
	mu   sync.Mutex
	ctl  string // the control subject, from the first heartbeat
	why  string // set when the caller cancels
	sent bool
	sigs []string // signals waiting for the control subject
}

// tap acks a heartbeat and sends a cancel that waited for its subject.
func (rc *runControl) tap(m *nats.Msg) {
	if m.Header.Get(wire.HeaderHeartbeat) == "" || m.Reply == "" || len(m.Data) != 0 {
		return
	}
	ack := nats.NewMsg(m.Reply)
	ack.Header.Set(wire.HeaderHeartbeat, wire.HeartbeatAck)
	rc.nc.PublishMsg(ack)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.ctl = m.Reply
	rc.send()
}

// cancel asks sandboxd to stop the run: now if a heartbeat gave the
// control subject, else with the first heartbeat to come.
func (rc *runControl) cancel(why string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.why = why
	rc.send()
}

func (rc *runControl) send() {
	if rc.ctl == "" {
		return
	}
	for _, name := range rc.sigs {
		m := nats.NewMsg(rc.ctl)
		m.Header.Set(wire.HeaderSignal, name)
		rc.nc.PublishMsg(m)
	}
	rc.sigs = nil
	if rc.why == "" || rc.sent {
		return
	}
	m := nats.NewMsg(rc.ctl)
	m.Header.Set(wire.HeaderCancel, rc.why)
	rc.sent = rc.nc.PublishMsg(m) == nil
}

// runReader is Run's side of one run's messages.
type runReader struct {
	c      *Client
	live   bool
	output func(stream string, data []byte)
	// waiting hears that a person is asked (nil: nobody listens)
	waiting func(wire.ApprovalWait)

	chunks         int
	stdout, stderr []byte
	resumed        bool // a resume went out (resume.go)
}

// read handles one message; final says Run is over with res or err.
func (r *runReader) read(m *nats.Msg) (res *wire.RunResult, final bool, err error) {
	switch {
	case m.Header.Get("Status") == "503":
		return nil, true, wire.Errorf(wire.CodeUnavailable, "no sandboxd is running: start it (moat status shows what is missing)")
	case m.Header.Get(wire.HeaderHeartbeat) != "" && len(m.Data) == 0: // acked by runControl
		return nil, false, nil
	case m.Header.Get(wire.HeaderApprovalID) != "" && len(m.Data) == 0:
		if r.waiting != nil {
			w := wire.ApprovalWait{Event: "approval.waiting", ID: m.Header.Get(wire.HeaderApprovalID), Reason: m.Header.Get(wire.HeaderApprovalReason)}
			w.ExpiresAt, _ = time.Parse(time.RFC3339Nano, m.Header.Get(wire.HeaderApprovalExpires))
			r.waiting(w)
		}
		return nil, false, nil
	case m.Header.Get(wire.HeaderStream) != "":
		r.chunks++
		stream := m.Header.Get(wire.HeaderStream)
		switch {
		case r.live:
			r.output(stream, m.Data)
		case stream == wire.StreamStderr:
			r.stderr = append(r.stderr, m.Data...)
		default:
			r.stdout = append(r.stdout, m.Data...)
		}
		return nil, false, nil
	case m.Header.Get(wire.HeaderErrorCode) != "":
		return nil, true, &wire.Error{Code: wire.ParseCode(m.Header.Get(wire.HeaderErrorCode)), Message: m.Header.Get(wire.HeaderError)}
	}
	res = &wire.RunResult{}
	if err := r.c.decodeReply(m, res); err != nil {
		return nil, true, wire.Errorf(wire.CodeInternal, "garbled answer from sandboxd: %v", err)
	}
	if n := m.Header.Get(wire.HeaderChunks); n != "" {
		if want, err := strconv.Atoi(n); err != nil || want != r.chunks {
			return nil, true, wire.Errorf(wire.CodeInternal, "%d of %s output chunks arrived: the bus dropped some (a slow reader); the run ended with status %d, its record is in the audit trail", r.chunks, n, res.ExitCode)
		}
		res.Stdout, res.Stderr = r.stdout, r.stderr
	}
	return res, true, nil
}
