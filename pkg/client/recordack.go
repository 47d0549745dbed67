package client

import (
	"encoding/json"

	"github.com/moatsec/moat/pkg/audit"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// An allow policyd answers before its record is acked (wire.HeaderRecordAck,
// docs/bus.md "An allow's record acked to its caller") stands only once
// JetStream's ack of that record reaches the check's own ack subject
// (wire.RecordAckSubject) and names the audit stream: check waits for both,
// in either order, within the check's deadline, and denies otherwise. A
// record the stream did not take for a moment (no leader yet, a bus coming
// back: no ack within recordAckWait, or a 503) is asked for once more
// without the ack to the caller, as long as no person was asked: policyd
// then answers once the record is acked, sending it again while the stream
// does not answer.

// recordAckWait bounds the wait for an allow's record's ack, as
// audit.AckTimeout bounds a publisher's: past it the check is asked again
// without the ack to the caller, time and a person's absence permitting. A
// record the stream did store but acked later still is then on record
// twice, under the check's request id.
const recordAckWait = audit.AckTimeout

// recordAcked is allow once ack, JetStream's answer to its record, says
// the audit stream stored it; else a deny, audit-unavailable, and whether
// the stream may take it when asked again (no stream answered, or it said
// 503 for another reason than being full): nothing was stored then.
func recordAcked(allow wire.Decision, ack *nats.Msg) (d wire.Decision, again bool) {
	if ack.Header.Get("Status") == "503" {
		return denied(wire.ReasonAuditUnavailable, "the decision could not be recorded (audit stream %s is not answering), so nothing may run", wire.AuditStream), true
	}
	var a struct {
		Stream string `json:"stream"`
		Seq    uint64 `json:"seq"`
		Error  *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	switch err := json.Unmarshal(ack.Data, &a); {
	case err != nil:
		return denied(wire.ReasonAuditUnavailable, "the decision's record was answered with garbage (%v), so nothing may run", err), false
	case a.Error != nil && audit.Full(a.Error.Description):
		return denied(wire.ReasonAuditUnavailable, "the decision could not be recorded (audit stream %s is full: start auditd to drain it), so nothing may run", wire.AuditStream), false
	case a.Error != nil:
		return denied(wire.ReasonAuditUnavailable, "the decision could not be recorded (%s), so nothing may run", a.Error.Description), a.Error.Code == 503
	case a.Stream != wire.AuditStream || a.Seq == 0:
		return denied(wire.ReasonAuditUnavailable, "the decision's record was acked by stream %q, not %s, so nothing may run", a.Stream, wire.AuditStream), false
	}
	return allow, false
}
