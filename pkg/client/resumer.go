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
//
// The request itself may have been lost with the bus (on its way to a
// service when busd stopped, or delivered to nobody while the services
// reconnected): when nothing was heard for wire.ResumeAfter since the
// connection came back (or since a no-responders status within
// RestartGrace of its coming back), the resumer sends it again (resend,
// marked wire.HeaderResent), and again every wire.ResumeAfter while nothing
// is heard, within the call's deadline; after a no-responders status, at
// the next poll. A service that already has it does
// not handle it twice (service.HandleKept).
type resumer struct {
	c          *Client
	subject    string
	reply      string
	requestID  string
	resend     func() error // sends the request again, marked resent
	heard      time.Time    // the last message from the service, or the request
	sent       time.Time    // the last resume
	reconnects uint64
	// lost is when the request may have been lost: its connection came
	// back since it went out, or a no-responders status came soon after
	// a restart (RestartGrace). Zero: neither.
	lost    time.Time
	resent  time.Time // the last time the request was sent again
	refused time.Time // the last no-responders status that was the request's own
	during  bool      // the connection came back since the request went out
	resumed bool      // a resume went out
	// asked: a resume went out since the request last did, so a
	// no-responders status may be the resume's (no copy back to hear
	// it), not proof that the request reached nobody.
	asked bool
}

func (c *Client) resumer(subject, reply, requestID string, resend func() error) *resumer {
	return &resumer{c: c, subject: subject, reply: reply, requestID: requestID, resend: resend, heard: time.Now(), reconnects: c.nc.Stats().Reconnects}
}

// reconnected notes a re-established connection and says whether the
// connection came back since the request was sent.
func (r *resumer) reconnected() bool {
	if n := r.c.nc.Stats().Reconnects; n != r.reconnects {
		r.reconnects, r.lost, r.during = n, time.Now(), true
		r.sent = time.Time{} // resume at once
	}
	return r.during
}

// notBack says whether a no-responders status is no proof that no service
// runs: a resume went out (nobody heard it yet), or the connection came
// back during the call or shortly before (RestartGrace) — the request then
// found no service yet, and is sent again.
func (r *resumer) notBack() bool {
	if !r.reconnected() && !r.resumed && !cameBack(r.c.nc) {
		return false
	}
	now := time.Now()
	if !r.asked {
		r.refused = now
	}
	if r.lost.IsZero() {
		r.lost = now
	}
	return true
}

func (r *resumer) poll() {
	r.reconnected()
	now := time.Now()
	if (r.during && r.sent.IsZero()) || (now.Sub(r.heard) >= wire.ResumeAfter && now.Sub(r.sent) >= wire.ResumeEvery) {
		r.sent = now
		m := nats.NewMsg(r.subject)
		m.Reply = r.reply
		m.Header.Set(wire.HeaderRequestID, r.requestID)
		if r.c.nc.PublishMsg(m) == nil {
			r.resumed, r.asked = true, true
		}
		return // the request goes out again at the next poll, not with the resume (asked)
	}
	// The request's own no-responders status since it last went out: it
	// reached nobody, and goes out again at once (within a policyd's own
	// deadline for resolving, say). One that may be a resume's waits the
	// usual wire.ResumeAfter: a copy that holds the request may not be
	// back yet, and would answer the resume.
	refused := r.refused.After(r.resent)
	if r.resend != nil && !r.lost.IsZero() && r.heard.Before(r.lost) &&
		(refused || now.Sub(r.lost) >= wire.ResumeAfter && now.Sub(r.resent) >= wire.ResumeAfter) {
		r.resent, r.asked = now, false
		r.resend()
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
	rs := c.resumer(resume, reply, requestID, func() error {
		again := nats.NewMsg(subject)
		again.Reply, again.Data = reply, body
		for k, v := range msg.Header {
			again.Header[k] = v
		}
		again.Header.Set(wire.HeaderResent, "1")
		return c.nc.PublishMsg(again)
	})
	if err := c.nc.PublishMsg(msg); err != nil {
		return wire.Errorf(wire.CodeUnavailable, "request %s: %v", subject, err)
	}
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
			if rs.notBack() {
				continue // nobody heard the request or the resume yet (the service not back): keep waiting
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
