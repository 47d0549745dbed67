package client_test

import (
	"cmp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// TestAllowStandsOnItsRecordAck: an allow policyd answers before its
// record is acked (wire.HeaderRecordAck) is an allow only once JetStream's
// ack of that record reaches the caller, on the check's own ack subject,
// and names the audit stream. Anything else is a deny: no ack in time, an ack subject other than the check's, an ack with an error,
// from another stream or garbled. A refusal that may pass (no stream
// answered, a 503, no ack within 2 s with time left) is asked again once without the ack to the caller, whose
// answer is final. The acks here are sent by hand, as a
// forger on the bus would; policyd's key may not publish there.
func TestAllowStandsOnItsRecordAck(t *testing.T) {
	allow := `{"verdict":"allow","reasons":[{"rule":"r","message":"fine"}],"decided_by":"fake"}`
	good := `{"stream":"` + wire.AuditStream + `","seq":7}`
	for _, tc := range []struct {
		name      string
		elsewhere bool          // the answer names an ack subject not the check's
		ack       string        // "" sends none
		status    string        // the ack's Status header
		first     bool          // the ack goes before the answer
		wait      time.Duration // the check's deadline (default 500 ms)
		again     bool          // asked again without the ack to the caller (a refusal that may pass)
		verdict   string
		rule      string
		msg       string
	}{
		{name: "acked", ack: good, verdict: wire.VerdictAllow, rule: "r"},
		{name: "acked before the answer", ack: good, first: true, verdict: wire.VerdictAllow, rule: "r"},
		{name: "no ack", verdict: wire.VerdictDeny, rule: wire.ReasonAuditUnavailable, msg: "not acked within"},
		{name: "no ack in time, then asked again", wait: 5 * time.Second, verdict: wire.VerdictAllow, rule: "again", again: true},
		{name: "ack elsewhere", elsewhere: true, ack: good, verdict: wire.VerdictDeny, rule: wire.ReasonPolicyUnavailable, msg: "not this check's"},
		{name: "stream full", ack: `{"error":{"code":503,"err_code":10077,"description":"maximum bytes exceeded"}}`, verdict: wire.VerdictDeny, rule: wire.ReasonAuditUnavailable, msg: "is full: start auditd"},
		{name: "no stream", status: "503", verdict: wire.VerdictAllow, rule: "again", again: true},
		{name: "stream busy", ack: `{"error":{"code":503,"description":"JetStream system temporarily unavailable"}}`, verdict: wire.VerdictAllow, rule: "again", again: true},
		{name: "another stream", ack: `{"stream":"OTHER","seq":7}`, verdict: wire.VerdictDeny, rule: wire.ReasonAuditUnavailable, msg: `stream "OTHER"`},
		{name: "garbled", ack: "\xc1", verdict: wire.VerdictDeny, rule: wire.ReasonAuditUnavailable, msg: "garbage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := bustest.Start(t)
			forger := s.Conn(t, home.RoleAdmin)
			asked := make(chan string, 4)
			fakePolicyd(t, s, func(m *nats.Msg) {
				asked <- m.Header.Get(wire.HeaderRecordAck)
				if m.Header.Get(wire.HeaderRecordAck) == "" { // as policyd: final, once on record
					respond(t, m, map[string]string{wire.HeaderContentType: wire.ContentJSON},
						`{"verdict":"allow","reasons":[{"rule":"again","message":"on record"}]}`)
					return
				}
				to := wire.RecordAckSubject(m.Reply)
				ack := func() {
					if tc.ack == "" && tc.status == "" {
						return
					}
					a := nats.NewMsg(to)
					a.Data = []byte(tc.ack)
					if tc.status != "" {
						a.Header.Set("Status", tc.status)
					}
					if err := forger.PublishMsg(a); err != nil {
						t.Error(err)
					}
					forger.Flush()
				}
				if tc.first {
					ack()
				}
				named := to
				if tc.elsewhere {
					named = wire.RecordAckSubject("_INBOX.someone-else")
				}
				respond(t, m, map[string]string{wire.HeaderContentType: wire.ContentJSON, wire.HeaderRecordAck: named}, allow)
				if !tc.first {
					ack()
				}
			})
			d := check(t, s, cmp.Or(tc.wait, 500*time.Millisecond))
			if d.Verdict != tc.verdict || d.Reasons[0].Rule != tc.rule || !strings.Contains(d.Reasons[0].Message, tc.msg) {
				t.Fatalf("decision %+v, want %s %s mentioning %q", d, tc.verdict, tc.rule, tc.msg)
			}
			want := []string{wire.RecordAckAsk}
			if tc.again {
				want = append(want, "")
			}
			var got []string
			for len(asked) > 0 {
				got = append(got, <-asked)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("the checks sent asked for their record's ack %q, want %q", got, want)
			}
		})
	}
}
