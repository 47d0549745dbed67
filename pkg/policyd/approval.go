package policyd

import (
	"context"
	"fmt"
	"time"

	"github.com/moatsec/moat/pkg/service"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// ask publishes the question on moat.approval.ask.<id> and waits for an
// answer on moat.approval.answer.<id> — which only the approver and admin
// keys may publish — or the approval timeout, whichever comes first.
func (d *Daemon) ask(req *service.Request, cr *wire.CheckRequest, prof *wire.Profile, dec wire.Decision) wire.Decision {
	timeout := d.cfg.ApprovalTimeout
	if t := time.Duration(cr.ApprovalTimeoutMS) * time.Millisecond; t > 0 && t < timeout {
		timeout = t
	}
	now := time.Now().UTC()
	q := &wire.ApprovalAsk{ID: wire.NewID(), RequestID: cr.RequestID, SessionID: cr.SessionID, Argv: cr.Argv,
		Cwd: prof.Cwd, Workspace: prof.Workspace, Profile: prof.Name, Reasons: dec.Reasons, AskedBy: d.svc.ID(),
		AskedAt: now, ExpiresAt: now.Add(timeout)}

	answers := make(chan wire.ApprovalAnswer, 1)
	sub, err := d.nc.Subscribe(wire.ApprovalAnswerSubject(q.ID), func(m *nats.Msg) {
		var a wire.ApprovalAnswer
		err := wire.Decode(wire.DetectFormat(m.Header.Get(wire.HeaderContentType), m.Data), m.Data, &a)
		if err == nil && a.Verdict != wire.VerdictAllow && a.Verdict != wire.VerdictDeny {
			err = wire.Errorf(wire.CodeBadRequest, "verdict %q: answer allow or deny", a.Verdict)
		}
		if err == nil && a.ID != "" && a.ID != q.ID {
			err = wire.Errorf(wire.CodeBadRequest, "the answer names approval %s, not %s", a.ID, q.ID)
		}
		if err != nil {
			respondError(m, err)
			return
		}
		select {
		case answers <- a:
			respond(m, &wire.ApprovalAck{ID: q.ID, Verdict: a.Verdict})
		default:
			respondError(m, wire.Errorf(wire.CodeDenied, "approval %s was already answered", q.ID))
		}
	})
	if err != nil {
		return withFirst(wire.VerdictDeny, wire.Reason{Rule: wire.ReasonApprovalTimeout,
			Message: "cannot wait for an approval: " + err.Error()}, dec)
	}
	defer sub.Unsubscribe()
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
		return withFirst(wire.VerdictDeny, wire.Reason{Rule: wire.ReasonApprovalTimeout,
			Message: "cannot ask for approval: " + err.Error()}, dec)
	}
	if err := d.audit.Publish(context.Background(), &wire.AuditEvent{Kind: "approval.asked", RequestID: q.RequestID,
		SessionID: q.SessionID, Profile: q.Profile, Argv: q.Argv, Cwd: q.Cwd, Verdict: wire.VerdictPrompt,
		Reasons: q.Reasons, Detail: map[string]any{"approval_id": q.ID, "expires_at": q.ExpiresAt}}); err != nil {
		// Nobody may approve what is not on record.
		return withFirst(wire.VerdictDeny, wire.Reason{Rule: wire.ReasonAuditUnavailable,
			Message: "the approval request could not be recorded: " + err.Error()}, dec)
	}
	if req.Header(wire.HeaderAcceptInterim) != "" {
		req.Interim(map[string]string{wire.HeaderApprovalID: q.ID, wire.HeaderApprovalExpires: q.ExpiresAt.Format(time.RFC3339Nano)})
	}
	d.log.Info("waiting for approval", "approval_id", q.ID, "request_id", q.RequestID, "timeout", timeout)

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case a := <-answers:
		by := a.By
		if by == "" {
			by = "an approver"
		}
		msg := fmt.Sprintf("%s %s approval %s", by, map[string]string{wire.VerdictAllow: "granted", wire.VerdictDeny: "refused"}[a.Verdict], q.ID)
		if a.Reason != "" {
			msg += ": " + a.Reason
		}
		if a.Verdict == wire.VerdictAllow {
			return withFirst(wire.VerdictAllow, wire.Reason{Rule: "approval.granted", Message: msg}, dec)
		}
		return withFirst(wire.VerdictDeny, wire.Reason{Rule: "approval.denied", Message: msg}, dec)
	case <-timer.C:
		return withFirst(wire.VerdictDeny, wire.Reason{Rule: wire.ReasonApprovalTimeout,
			Message: fmt.Sprintf("nobody answered approval %s within %s", q.ID, timeout)}, dec)
	}
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
