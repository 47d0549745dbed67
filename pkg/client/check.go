package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// ApprovalGrace is how much longer than an approval's expiry the caller waits
// for policyd's answer before denying on its own.
const ApprovalGrace = 5 * time.Second

// Check asks policyd for a decision. It is the only way moat's parts ask, and
// it fails closed: when policyd is absent, slow or answers garbage, the
// decision is a deny whose reason says which (policy-unavailable,
// policy-timeout, policy-error). The deadline is the context's, else the
// client's timeout; while policyd waits for a person to answer a prompt, it
// stretches to the approval's expiry plus ApprovalGrace. A check whose
// answer the bus lost in a restart is asked for again (resumer). An allow
// is returned only once its record is in the audit stream: policyd answers
// after its ack, or at once with the ack sent here (recordack.go).
func (c *Client) Check(ctx context.Context, req *wire.CheckRequest) wire.Decision {
	return c.CheckWaiting(ctx, req, nil)
}

// CheckWaiting is Check that tells waiting, about every second, while a
// person is asked (who may answer, why, until when). It keeps policyd's
// approval wait alive by answering its heartbeats, and ends it when ctx is
// done (see wire's "approval wait").
func (c *Client) CheckWaiting(ctx context.Context, req *wire.CheckRequest, waiting func(wire.ApprovalWait)) wire.Decision {
	return c.check(ctx, wire.SubjectCheck, req, waiting)
}

// CheckResolved is CheckWaiting for sandboxd, whose req carries the profile
// profiled resolved for the run: it goes on wire.SubjectCheckResolved, which
// only sandboxd's key may publish, so that grants may cover its prompts.
func (c *Client) CheckResolved(ctx context.Context, req *wire.CheckRequest, waiting func(wire.ApprovalWait)) wire.Decision {
	return c.check(ctx, wire.SubjectCheckResolved, req, waiting)
}

func (c *Client) check(ctx context.Context, subject string, req *wire.CheckRequest, waiting func(wire.ApprovalWait)) wire.Decision {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(c.timeout)
	}
	// policyd answers sandboxd's allows at once anyway (wire.SubjectCheckResolved):
	// only a check on wire.SubjectCheck asks for its record's ack.
	d, again := c.ask(ctx, subject, req, waiting, deadline, subject == wire.SubjectCheck)
	if again { // on a fresh reply subject: a new call to policyd, not a resend
		d, _ = c.ask(ctx, subject, req, waiting, deadline, false)
	}
	return d
}

// ask is one call of check, by deadline unless a person is asked. With
// recordAck it lets policyd send an allow's record's ack here
// (recordack.go), and says whether to ask again without.
func (c *Client) ask(ctx context.Context, subject string, req *wire.CheckRequest, waiting func(wire.ApprovalWait), deadline time.Time, recordAck bool) (wire.Decision, bool) {
	if req.RequestID == "" {
		req.RequestID = wire.NewID()
	}
	out := c.outgoing(req)
	body, err := out.body(false)
	if err != nil {
		return denied(wire.ReasonPolicyError, "cannot encode the request: %v", err), false
	}
	reply, msgs, done, err := c.replies(nil)
	if err != nil {
		return denied(wire.ReasonPolicyUnavailable, "cannot wait for policyd's answer: %v", err), false
	}
	defer done()
	token, ackTo := "", "" // the allow's record is acked on ackTo (recordack.go)
	if recordAck {
		token = wire.NewToken()
		ackTo = wire.RecordAckSubject(reply, token)
		defer c.also(ackTo, msgs)()
	}
	var last []byte // the body last sent, whole or by hash
	send := func(body []byte, whole, resent bool) error {
		last = body
		// The header's values share one array: an allocation, not one each.
		vals := [...]string{wire.ContentMsgpack, req.RequestID, "1", token, req.SessionID, "", ""}
		keys := [...]string{wire.HeaderContentType, wire.HeaderRequestID, wire.HeaderAcceptInterim, wire.HeaderRecordAck, wire.HeaderSessionID, wire.HeaderProfileHash, wire.HeaderResent}
		if whole {
			vals[5] = out.hash
		}
		if resent {
			vals[6] = "1"
		}
		hdr := make(nats.Header, len(keys))
		for i, k := range keys {
			if vals[i] != "" {
				hdr[k] = vals[i : i+1 : i+1]
			}
		}
		return c.nc.PublishMsg(&nats.Msg{Subject: subject, Reply: reply, Header: hdr, Data: body})
	}
	rs := c.resumer(wire.SubjectCheckResume, reply, req.RequestID, func() error { return send(last, !out.byHash, true) })
	if err := send(body, !out.byHash, false); err != nil {
		return denied(wire.ReasonPolicyUnavailable, "cannot reach policyd: %v", err), false
	}
	ctl := "" // the approval's control subject, once a person is asked
	var (
		allowed *wire.Decision // an allow whose record's ack is still to come
		acked   *nats.Msg      // that ack, if it came first
		ackBy   time.Time      // when to stop waiting for it
	)
	unacked := func() (wire.Decision, bool) {
		again := recordAck && ctl == "" && time.Until(deadline) > 0
		return denied(wire.ReasonAuditUnavailable, "policyd allowed it, but the decision's record was not acked in time, so nothing may run"), again
	}
	for {
		if allowed != nil && acked != nil {
			d, again := recordAcked(*allowed, acked)
			return d, again && recordAck && ctl == "" // a person asked is not asked twice
		}
		m := msgs.next()
		if m == nil {
			wait := min(time.Until(deadline), resumePoll)
			if allowed != nil {
				wait = min(wait, time.Until(ackBy))
			}
			timer := time.NewTimer(wait)
			select {
			case <-msgs.ready:
				timer.Stop()
				continue
			case <-timer.C:
				switch {
				case allowed != nil && (time.Until(ackBy) <= 0 || time.Until(deadline) <= 0):
					return unacked()
				case allowed != nil:
					continue // the answer came: only its record's ack is awaited
				case time.Until(deadline) > 0:
					rs.poll()
					continue
				}
				return denied(wire.ReasonPolicyTimeout, "no decision from policyd in time (deadline %s)", deadline.Format(time.RFC3339Nano)), false
			case <-ctx.Done():
				timer.Stop()
				if allowed != nil {
					d, _ := unacked()
					return d, false
				}
				if ctl != "" { // nobody should answer for a caller who left
					bye := nats.NewMsg(ctl)
					bye.Header.Set(wire.HeaderCancel, context.Cause(ctx).Error())
					c.nc.PublishMsg(bye)
				}
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return denied(wire.ReasonPolicyTimeout, "no decision from policyd before the caller's deadline"), false
				}
				return denied(wire.ReasonPolicyUnavailable, "waiting for policyd: %v", ctx.Err()), false
			}
		}
		if recordAck && m.Subject == ackTo {
			acked = m
			continue
		}
		if allowed != nil {
			continue // answered: only the record's ack is awaited
		}
		if m.Header.Get("Status") == "503" {
			if rs.notBack() {
				continue // nobody heard the check or the resume yet (policyd not back): keep waiting
			}
			return denied(wire.ReasonPolicyUnavailable, "no policyd is running: start it (moat status shows what is missing)"), false
		}
		rs.heard = time.Now()
		if id := m.Header.Get(wire.HeaderApprovalID); id != "" && len(m.Data) == 0 && m.Header.Get(wire.HeaderErrorCode) == "" {
			w := wire.ApprovalWait{Event: "approval.waiting", ID: id, Reason: m.Header.Get(wire.HeaderApprovalReason)}
			if exp, err := time.Parse(time.RFC3339Nano, m.Header.Get(wire.HeaderApprovalExpires)); err == nil {
				deadline, w.ExpiresAt = exp.Add(ApprovalGrace), exp
			}
			if m.Reply != "" {
				ctl = m.Reply
				ack := nats.NewMsg(ctl)
				ack.Header.Set(wire.HeaderHeartbeat, wire.HeartbeatAck)
				c.nc.PublishMsg(ack)
			}
			if waiting != nil {
				waiting(w)
			}
			continue
		}
		if out.byHash && m.Header.Get(wire.HeaderErrorCode) == strconv.Itoa(wire.CodeNotFound) {
			// This policyd does not keep the profile: send it whole, once.
			c.kept.forget(out.hash)
			out.byHash = false
			if body, err = out.body(true); err == nil {
				err = send(body, true, false)
			}
			if err != nil {
				return denied(wire.ReasonPolicyUnavailable, "cannot reach policyd: %v", err), false
			}
			continue
		}
		if h := m.Header.Get(wire.HeaderProfileCached); h != "" && h == out.hash {
			c.kept.add(h)
		}
		d := c.decisionOf(m)
		if to := m.Header.Get(wire.HeaderRecordAck); to != "" && d.Verdict == wire.VerdictAllow {
			if !recordAck || to != ackTo {
				return denied(wire.ReasonPolicyUnavailable, "policyd said the allow's record is acked on %q, not this check's %q", to, ackTo), false
			}
			allowed, ackBy = &d, time.Now().Add(recordAckWait)
			continue
		}
		return d, false
	}
}

// maxKept bounds the profile hashes a client remembers policyd keeping.
const maxKept = 256

// keptProfiles are the hashes of resolved profiles a policyd said it keeps
// (wire.HeaderProfileCached): checks under them send the hash alone.
type keptProfiles struct {
	mu sync.Mutex
	m  map[string]struct{}
}

func (k *keptProfiles) has(h string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.m[h]
	return ok
}

func (k *keptProfiles) add(h string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil {
		k.m = map[string]struct{}{}
	}
	if len(k.m) >= maxKept {
		for x := range k.m {
			delete(k.m, x)
			break
		}
	}
	k.m[h] = struct{}{}
}

func (k *keptProfiles) forget(h string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.m, h)
}

// outgoing is a check as it goes on the bus: with a resolved profile, the
// profile's hash, and whether the hash alone is sent (a policyd said it
// keeps it) or the whole profile with the hash in HeaderProfileHash.
type outgoing struct {
	req    *wire.CheckRequest
	hash   string
	byHash bool
}

func (c *Client) outgoing(req *wire.CheckRequest) *outgoing {
	o := &outgoing{req: req}
	if req.Profile.Resolved != nil && req.ProfileHash == "" {
		if h, err := wire.ProfileHash(req.Profile.Resolved); err == nil {
			o.hash, o.byHash = h, c.kept.has(h)
		}
	}
	return o
}

// body encodes the request: by hash unless whole or not kept.
func (o *outgoing) body(whole bool) ([]byte, error) {
	if whole || !o.byHash {
		return wire.Encode(wire.Msgpack, o.req)
	}
	r := *o.req
	r.Profile, r.ProfileHash = wire.ProfileRef{}, o.hash
	return wire.Encode(wire.Msgpack, &r)
}

func (c *Client) decisionOf(m *nats.Msg) wire.Decision {
	if code := m.Header.Get(wire.HeaderErrorCode); code != "" {
		reason := wire.ReasonPolicyError
		switch wire.ParseCode(code) {
		case wire.CodeUnavailable:
			reason = wire.ReasonPolicyUnavailable
		case wire.CodeTimeout:
			reason = wire.ReasonPolicyTimeout
		}
		return denied(reason, "%s", m.Header.Get(wire.HeaderError))
	}
	var d wire.Decision
	if err := c.decodeReply(m, &d); err != nil {
		return denied(wire.ReasonPolicyUnavailable, "policyd answered garbage: %v", err)
	}
	switch d.Verdict {
	case wire.VerdictAllow, wire.VerdictPrompt, wire.VerdictDeny:
	default:
		return denied(wire.ReasonPolicyUnavailable, "policyd answered an unknown verdict %q", d.Verdict)
	}
	if len(d.Reasons) == 0 {
		return denied(wire.ReasonPolicyUnavailable, "policyd answered %s without a reason", d.Verdict)
	}
	return d
}

func denied(rule, format string, args ...any) wire.Decision {
	return wire.Decision{Verdict: wire.VerdictDeny, Reasons: []wire.Reason{{Rule: rule, Message: fmt.Sprintf(format, args...)}}}
}

// Approvals gathers the questions every policyd instance waits on.
func (c *Client) Approvals(ctx context.Context, wait time.Duration) ([]wire.ApprovalAsk, error) {
	inbox := c.nc.NewRespInbox()
	ch := make(chan *nats.Msg, 64)
	sub, err := c.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	msg := nats.NewMsg(wire.SubjectApprovals)
	msg.Reply, msg.Data = inbox, []byte{0x80} // an empty msgpack map
	msg.Header.Set(wire.HeaderContentType, wire.ContentMsgpack)
	if err := c.nc.PublishMsg(msg); err != nil {
		return nil, err
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	var out []wire.ApprovalAsk
	for {
		select {
		case m := <-ch:
			if m.Header.Get("Status") == "503" {
				return nil, wire.Errorf(wire.CodeUnavailable, "no policyd is running")
			}
			var l wire.ApprovalList
			if c.decodeReply(m, &l) == nil {
				out = append(out, l.Pending...)
			}
		case <-timer.C:
			return out, nil
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
}

// Answer answers approval id with verdict (allow or deny). A key that may
// not answer approvals is told so at once (403), not left to time out.
func (c *Client) Answer(ctx context.Context, a *wire.ApprovalAnswer) (*wire.ApprovalAck, error) {
	subject := wire.ApprovalAnswerSubject(a.ID)
	body, err := wire.Encode(wire.Msgpack, a)
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	reply, msgs, done, err := c.replies(nil)
	if err != nil {
		return nil, err
	}
	defer done()
	msg := nats.NewMsg(subject)
	msg.Reply, msg.Data = reply, body
	msg.Header.Set(wire.HeaderContentType, wire.ContentMsgpack)
	if err := c.nc.PublishMsg(msg); err != nil {
		return nil, wire.Errorf(wire.CodeUnavailable, "cannot reach the bus: %v", err)
	}
	// The bus refuses a publish it does not permit with an error that
	// arrives before the answer to this round trip.
	if err := c.nc.FlushWithContext(ctx); err == nil && refused(c.nc.LastError(), subject) {
		return nil, wire.Errorf(wire.CodeDenied, "this key may not approve: use the approver key (--creds MOAT_HOME/creds/approver.nk, the default of moat approve and moat deny)")
	}
	for {
		m := msgs.next()
		if m == nil {
			select {
			case <-msgs.ready:
				continue
			case <-ctx.Done():
				return nil, wire.Errorf(wire.CodeTimeout, "no answer from policyd about approval %s in time", a.ID)
			}
		}
		if m.Header.Get("Status") == "503" {
			return nil, wire.Errorf(wire.CodeNotFound, "nothing waits for approval %s: it was answered, timed out, or never existed", a.ID)
		}
		if code := m.Header.Get(wire.HeaderErrorCode); code != "" {
			return nil, &wire.Error{Code: wire.ParseCode(code), Message: m.Header.Get(wire.HeaderError)}
		}
		var ack wire.ApprovalAck
		if err := wire.Decode(wire.DetectFormat(m.Header.Get(wire.HeaderContentType), m.Data), m.Data, &ack); err != nil {
			return nil, wire.Errorf(wire.CodeInternal, "garbled answer from policyd: %v", err)
		}
		return &ack, nil
	}
}

// refused reports whether err is the bus refusing a publish to subject.
func refused(err error, subject string) bool {
	return errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"`+subject+`"`)
}
