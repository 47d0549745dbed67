package policyd

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/moatsec/moat/pkg/service"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// ask publishes the question on moat.approval.ask.<id> and waits for an
// answer on moat.approval.answer.<id> — which only the approver and admin
// keys may publish — or the approval timeout, whichever comes first. The
// wait holds one of policyd's MaxApprovals places and none of its request
// slots, and ends at once when the caller goes away (see wire's "approval
// wait") or policyd stops. An answer may make a grant only when vouched (the
// profile is not one the caller supplied).
func (d *Daemon) ask(req *service.Request, cr *wire.CheckRequest, prof *wire.Profile, dec wire.Decision, vouched bool) wire.Decision {
	select {
	case d.waiting <- struct{}{}:
		defer func() { <-d.waiting }()
	default:
		return withFirst(wire.VerdictDeny, wire.Reason{Rule: wire.ReasonApprovalBusy, Message: fmt.Sprintf(
			"policyd already waits for %d approvals, its limit (--max-approvals): answer some (moat approvals), or retry later",
			cap(d.waiting))}, dec)
	}
	req.Detach() // a person's pace must not take other checks' slots
	timeout := d.cfg.ApprovalTimeout
	if t := time.Duration(cr.ApprovalTimeoutMS) * time.Millisecond; t > 0 && t < timeout {
		timeout = t
	}
	now := time.Now().UTC()
	q := &wire.ApprovalAsk{ID: wire.NewID(), RequestID: cr.RequestID, SessionID: cr.SessionID, Argv: cr.Argv, Net: cr.Net,
		Cwd: prof.Cwd, Workspace: prof.Workspace, Profile: prof.Name, Reasons: dec.Reasons, AskedBy: d.svc.ID(),
		AskedAt: now, ExpiresAt: now.Add(timeout)}
	denied := func(rule, format string, args ...any) wire.Decision {
		return withFirst(wire.VerdictDeny, wire.Reason{Rule: rule, Message: fmt.Sprintf(format, args...)}, dec)
	}

	// Nobody may approve what is not on record: the question is recorded
	// before anyone can see it (listed, published or answered).
	if err := d.audit.Publish(context.Background(), &wire.AuditEvent{Kind: wire.KindApprovalAsked, RequestID: q.RequestID,
		SessionID: q.SessionID, Profile: q.Profile, Argv: q.Argv, Cwd: q.Cwd, Verdict: wire.VerdictPrompt,
		Reasons: q.Reasons, Detail: map[string]any{"approval_id": q.ID, "expires_at": q.ExpiresAt}}); err != nil {
		return denied(wire.ReasonAuditUnavailable, "the approval request could not be recorded: %v", err)
	}

	w := &wait{answers: make(chan wire.ApprovalAnswer, 1), gone: make(chan string, 1), freed: make(chan struct{}, 1)}
	sub, err := d.nc.Subscribe(wire.ApprovalAnswerSubject(q.ID), func(m *nats.Msg) {
		w.answer(m, q.ID, func(a *wire.ApprovalAnswer) (*wire.Grant, error) { return d.answerGrant(q, a, vouched) })
	})
	if err != nil {
		return denied(wire.ReasonApprovalTimeout, "cannot wait for an approval: %v", err)
	}
	defer sub.Unsubscribe()
	interim := req.Header(wire.HeaderAcceptInterim) != ""
	ctl := d.nc.NewRespInbox()
	if interim {
		csub, err := d.nc.Subscribe(ctl, w.control)
		if err != nil {
			return denied(wire.ReasonApprovalTimeout, "cannot wait for an approval: %v", err)
		}
		defer csub.Unsubscribe()
	}
	d.mu.Lock()
	d.pending[q.ID] = q
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.pending, q.ID)
		d.mu.Unlock()
	}()

	body, _ := wire.Encode(wire.JSON, q) // JSON, so `nats sub 'moat.approval.ask.>'` reads well
	msg := nats.NewMsg(wire.ApprovalAskSubject(q.ID))
	msg.Data = body
	msg.Header.Set(wire.HeaderContentType, wire.ContentJSON)
	msg.Header.Set(wire.HeaderRequestID, q.RequestID)
	if err := d.nc.PublishMsg(msg); err != nil {
		return denied(wire.ReasonApprovalTimeout, "cannot ask for approval: %v", err)
	}
	d.log.Info("waiting for approval", "approval_id", q.ID, "request_id", q.RequestID, "timeout", timeout)

	hdr := map[string]string{wire.HeaderApprovalID: q.ID, wire.HeaderApprovalExpires: q.ExpiresAt.Format(time.RFC3339Nano),
		wire.HeaderApprovalReason: oneLine(q.Reasons), wire.HeaderHeartbeat: "1"}
	lastAck := time.Now()
	if interim {
		req.InterimReply(hdr, ctl)
	}
	beat := time.NewTicker(wire.ApprovalHeartbeat)
	defer beat.Stop()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	answered := func(a wire.ApprovalAnswer) wire.Decision {
		by := a.By
		if by == "" {
			by = "an approver"
		}
		msg := fmt.Sprintf("%s %s approval %s", by, map[string]string{wire.VerdictAllow: "granted", wire.VerdictDeny: "refused"}[a.Verdict], q.ID)
		if a.Reason != "" {
			msg += ": " + a.Reason
		}
		if a.Verdict == wire.VerdictAllow {
			dec = withFirst(wire.VerdictAllow, wire.Reason{Rule: "approval.granted", Message: msg}, dec)
			dec.Scope = a.For
			return dec
		}
		return withFirst(wire.VerdictDeny, wire.Reason{Rule: "approval.denied", Message: msg}, dec)
	}
	// An answer being taken as the wait ends (its grant being made, the
	// approver about to be told) is the outcome: what the approver is told
	// and what the caller gets never differ.
	unanswered := func(rule, format string, args ...any) wire.Decision {
		if a, ok := w.end(); ok {
			return answered(a)
		}
		return denied(rule, format, args...)
	}
	for {
		select {
		case a := <-w.answers:
			return answered(a)
		case <-timer.C:
			return unanswered(wire.ReasonApprovalTimeout, "nobody answered approval %s within %s", q.ID, timeout)
		case why := <-w.gone:
			d.log.Info("approval abandoned", "approval_id", q.ID, "request_id", q.RequestID, "why", why)
			return unanswered(wire.ReasonApprovalCancelled, "approval %s ended unanswered: %s", q.ID, why)
		case <-d.stopping:
			return unanswered(wire.ReasonApprovalCancelled, "approval %s ended unanswered: policyd is stopping; ask again", q.ID)
		case <-beat.C:
			if !interim {
				continue
			}
			if w.acked(&lastAck); time.Since(lastAck) > wire.ApprovalCallerSilence {
				return unanswered(wire.ReasonApprovalCancelled, "approval %s ended unanswered: the caller stopped answering for %s",
					q.ID, wire.ApprovalCallerSilence)
			}
			req.InterimReply(hdr, ctl)
		}
	}
}

// wait is one approval's mailbox: the answer, and the caller's side of the
// wait (acks, a cancel, or its absence). An answer is taken (taken set)
// before its grant is made and the approver told; once the wait has ended
// (end) none is.
type wait struct {
	taken   atomic.Bool
	given   atomic.Bool // an answer was taken and its grant made
	ended   atomic.Bool
	answers chan wire.ApprovalAnswer // one, once taken and its grant made
	freed   chan struct{}            // an answer whose grant failed let go of taken
	gone    chan string              // why the caller is gone, once
	ack     atomic.Int64             // unix nanoseconds of the latest ack
}

// answer takes a person's answer on moat.approval.answer.<id>, storing the
// grant it asks for (grant) before the ack. The ack goes out before the
// waiting check sees the answer (and unsubscribes).
func (w *wait) answer(m *nats.Msg, id string, grant func(*wire.ApprovalAnswer) (*wire.Grant, error)) {
	var a wire.ApprovalAnswer
	err := wire.Decode(wire.DetectFormat(m.Header.Get(wire.HeaderContentType), m.Data), m.Data, &a)
	if err == nil && a.Verdict != wire.VerdictAllow && a.Verdict != wire.VerdictDeny {
		err = wire.Errorf(wire.CodeBadRequest, "verdict %q: answer allow or deny", a.Verdict)
	}
	if err == nil && a.ID != "" && a.ID != id {
		err = wire.Errorf(wire.CodeBadRequest, "the answer names approval %s, not %s", a.ID, id)
	}
	if err == nil && !w.taken.CompareAndSwap(false, true) {
		err = wire.Errorf(wire.CodeDenied, "approval %s was already answered", id)
		if w.ended.Load() && !w.given.Load() {
			err = wire.Errorf(wire.CodeNotFound, "approval %s no longer waits: it ended unanswered", id)
		}
	}
	var gr *wire.Grant
	if err == nil {
		if gr, err = grant(&a); err != nil {
			w.taken.Store(false) // not taken: the approver may answer again
			select {
			case w.freed <- struct{}{}:
			default:
			}
		}
	}
	if err != nil {
		respondError(m, err)
		return
	}
	w.given.Store(true)
	respond(m, &wire.ApprovalAck{ID: id, Verdict: a.Verdict, Grant: gr})
	w.answers <- a
}

// end closes the wait to answers. One being taken as it ends is waited
// for: end returns it if its grant was made (its approver is told so),
// else nothing, and no answer is taken after.
func (w *wait) end() (wire.ApprovalAnswer, bool) {
	w.ended.Store(true)
	for !w.taken.CompareAndSwap(false, true) {
		select {
		case a := <-w.answers:
			return a, true
		case <-w.freed:
		}
	}
	return wire.ApprovalAnswer{}, false
}

// control reads the caller's side, on the approval's control subject.
func (w *wait) control(m *nats.Msg) {
	switch {
	case m.Header.Get("Status") == "503":
		w.leave("the caller is gone")
	case m.Header.Get(wire.HeaderCancel) != "":
		w.leave("the caller gave up (" + m.Header.Get(wire.HeaderCancel) + ")")
	case m.Header.Get(wire.HeaderHeartbeat) == wire.HeartbeatAck:
		w.ack.Store(time.Now().UnixNano())
	}
}

func (w *wait) leave(why string) {
	select {
	case w.gone <- why:
	default:
	}
}

// acked moves last to the latest ack, if later.
func (w *wait) acked(last *time.Time) {
	if t := time.Unix(0, w.ack.Load()); t.After(*last) {
		*last = t
	}
}

// oneLine is the first reason, for a header.
func oneLine(rs []wire.Reason) string {
	if len(rs) == 0 {
		return ""
	}
	return strings.Join(strings.Fields(rs[0].Rule+": "+rs[0].Message), " ")
}

func respond(m *nats.Msg, v any) {
	if m.Reply == "" {
		return
	}
	f := wire.DetectFormat(m.Header.Get(wire.HeaderContentType), m.Data)
	body, _ := wire.Encode(f, v)
	out := nats.NewMsg(m.Reply)
	out.Data = body
	out.Header.Set(wire.HeaderContentType, f.ContentType())
	m.RespondMsg(out)
}

func respondError(m *nats.Msg, err error) {
	if m.Reply == "" {
		return
	}
	we, ok := err.(*wire.Error)
	if !ok {
		we = &wire.Error{Code: wire.CodeBadRequest, Message: err.Error()}
	}
	out := nats.NewMsg(m.Reply)
	out.Header.Set(wire.HeaderErrorCode, fmt.Sprint(we.Code))
	out.Header.Set(wire.HeaderError, we.Message)
	m.RespondMsg(out)
}
