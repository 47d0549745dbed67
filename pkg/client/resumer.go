package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// resumePoll is how often a call that waits for its answer looks whether
// it should say again where it listens (resumer).
const resumePoll = 500 * time.Millisecond

// resumer says again where a call's caller listens, on its service's
// resume subject (wire.SubjectCheckResume, wire.SubjectResolveResume),
// when its connection was re-established or it heard nothing for
// wire.ResumeAfter (then every wire.ResumeEvery): receiving it gives the
// service back the bus's permission to answer there, lost when busd
// restarted, and the service sends an answer the bus refused again
// (service.Resumable).
type resumer struct {
	c          *Client
	subject    string
	reply      string
	requestID  string
	heard      time.Time // the last message from the service, or the request
	sent       time.Time // the last resume
	reconnects uint64
	resumed    bool // a resume went out
}

func (c *Client) resumer(subject, reply, requestID string) *resumer {
	return &resumer{c: c, subject: subject, reply: reply, requestID: requestID, heard: time.Now(), reconnects: c.nc.Stats().Reconnects}
}

func (r *resumer) poll() {
	n := r.c.nc.Stats().Reconnects
	if n == r.reconnects && (time.Since(r.heard) < wire.ResumeAfter || time.Since(r.sent) < wire.ResumeEvery) {
		return
	}
	r.reconnects, r.sent = n, time.Now()
	m := nats.NewMsg(r.subject)
	m.Reply = r.reply
	m.Header.Set(wire.HeaderRequestID, r.requestID)
	if r.c.nc.PublishMsg(m) == nil {
		r.resumed = true
	}
}

// callResumable is Call for a service that keeps its answers for resumes
// on resume (service.HandleKept): an answer the bus lost in a restart is
// asked for again. requestID must be set: it names the request in the
// resume.
func (c *Client) callResumable(ctx context.Context, subject, resume, requestID, sessionID string, in, out any) error {
	body, err := wire.Encode(wire.Msgpack, in)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(c.timeout)
	}
	reply, msgs, done, err := c.replies(nil)
	if err != nil {
		return wire.Errorf(wire.CodeUnavailable, "request %s: %v", subject, err)
	}
	defer done()
	msg := nats.NewMsg(subject)
	msg.Reply, msg.Data = reply, body
	msg.Header.Set(wire.HeaderContentType, wire.ContentMsgpack)
	msg.Header.Set(wire.HeaderRequestID, requestID)
	if sessionID != "" {
		msg.Header.Set(wire.HeaderSessionID, sessionID)
	}
	if err := c.nc.PublishMsg(msg); err != nil {
		return wire.Errorf(wire.CodeUnavailable, "request %s: %v", subject, err)
	}
	rs := c.resumer(resume, reply, requestID)
	for {
		m := msgs.next()
		if m == nil {
			timer := time.NewTimer(min(time.Until(deadline), resumePoll))
			select {
			case <-msgs.ready:
				timer.Stop()
			case <-timer.C:
				if time.Until(deadline) <= 0 {
					return wire.Errorf(wire.CodeTimeout, "no answer on %s in time", subject)
				}
				rs.poll()
			case <-ctx.Done():
				timer.Stop()
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return wire.Errorf(wire.CodeTimeout, "no answer on %s in time", subject)
				}
				return wire.Errorf(wire.CodeUnavailable, "request %s: %v", subject, ctx.Err())
			}
			continue
		}
		if m.Header.Get("Status") == "503" {
			if rs.resumed {
				continue // nobody heard the resume yet (the service not back): keep waiting
			}
			return wire.Errorf(wire.CodeUnavailable, "nothing answers %s: start the service that serves it (moat status shows what is missing)", subject)
		}
		if code := m.Header.Get(wire.HeaderErrorCode); code != "" {
			return &wire.Error{Code: wire.ParseCode(code), Message: m.Header.Get(wire.HeaderError)}
		}
		if err := c.decodeReply(m, out); err != nil {
			return wire.Errorf(wire.CodeInternal, "garbled answer on %s: %v", subject, err)
		}
		return nil
	}
}
