package client_test

import (
	"cmp"
	"strconv"
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
// ack of that record reaches the caller on the check's own ack subject (its
// reply subject and the token it sent) and names the audit stream with a
// sequence. Anything else is a deny: no ack in time, an ack on another
// subject (one guessed without the token), an answer naming another ack
// subject, an ack with an error, from another stream, without a sequence,
// or garbled. A refusal that may pass (no stream answered, a 503 that is
// not a full stream, no ack within 2 s with time left) is asked again once,
// without the ack to the caller, whose answer is final, within the same
// deadline. The acks here are sent by hand, as a forger on the bus would.
func TestAllowStandsOnItsRecordAck(t *testing.T) {
	allow := `{"verdict":"allow","reasons":[{"rule":"r","message":"fine"}],"decided_by":"fake"}`
	good := `{"stream":"` + wire.AuditStream + `","seq":7}`
	failed := func(code int, desc string) string { // as JetStream says it
		return `{"stream":"` + wire.AuditStream + `","seq":0,"error":{"code":` + strconv.Itoa(code) + `,"description":"` + desc + `"}}`
	}
	for _, tc := range []struct {
		name      string
		elsewhere bool          // the answer names an ack subject not the check's
		guessed   bool          // the ack goes to the reply subject + ".r", not + "." + the token
		ack       string        // "" sends none
		status    string        // the ack's Status header
		first     bool          // the ack goes before the answer
		wait      time.Duration // the check's deadline (default 500 ms)
		silent    bool          // asked again, the fake policyd says nothing
		again     bool          // asked again without the ack to the caller
		verdict   string
		rule      string
		msg       string
	}{
		{name: "acked", ack: good, verdict: wire.VerdictAllow, rule: "r"},
		{name: "acked before the answer", ack: good, first: true, verdict: wire.VerdictAllow, rule: "r"},
		{name: "no ack", verdict: wire.VerdictDeny, rule: wire.ReasonAuditUnavailable, msg: "not acked in time"},
		{name: "ack without the token", guessed: true, ack: good, verdict: wire.VerdictDeny, rule: wire.ReasonAuditUnavailable, msg: "not acked in time"},
		{name: "no ack in time, then asked again", wait: 5 * time.Second, again: true, verdict: wire.VerdictAllow, rule: "again"},
		{name: "asked again within the same deadline", wait: 2500 * time.Millisecond, silent: true, again: true, verdict: wire.VerdictDeny, rule: wire.ReasonPolicyTimeout},
		{name: "answer names another ack subject", elsewhere: true, ack: good, verdict: wire.VerdictDeny, rule: wire.ReasonPolicyUnavailable, msg: "not this check's"},
		{name: "stream full", ack: failed(503, "maximum bytes exceeded"), verdict: wire.VerdictDeny, rule: wire.ReasonAuditUnavailable, msg: "is full: start auditd"},
		{name: "refused", ack: failed(400, "expected stream does not match"), verdict: wire.VerdictDeny, rule: wire.ReasonAuditUnavailable, msg: "expected stream does not match"},
		{name: "a 503 status", status: "503", again: true, verdict: wire.VerdictAllow, rule: "again"},
		{name: "stream busy", ack: failed(503, "JetStream system temporarily unavailable"), again: true, verdict: wire.VerdictAllow, rule: "again"},
		{name: "another stream", ack: `{"stream":"OTHER","seq":7}`, verdict: wire.VerdictDeny, rule: wire.ReasonAuditUnavailable, msg: `stream "OTHER"`},
		{name: "no sequence", ack: `{"stream":"` + wire.AuditStream + `","seq":0}`, verdict: wire.VerdictDeny, rule: wire.ReasonAuditUnavailable, msg: "acked by stream"},
		{name: "garbled", ack: "\xc1", verdict: wire.VerdictDeny, rule: wire.ReasonAuditUnavailable, msg: "garbage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := bustest.Start(t)
			forger := s.Conn(t, home.RoleAdmin)
			asked := make(chan string, 4)
			fakePolicyd(t, s, func(m *nats.Msg) {
				token := m.Header.Get(wire.HeaderRecordAck)
				asked <- token
				if token == "" { // as policyd: final, once on record
					if !tc.silent {
						respond(t, m, map[string]string{wire.HeaderContentType: wire.ContentJSON},
							`{"verdict":"allow","reasons":[{"rule":"again","message":"on record"}]}`)
					}
					return
				}
				to := wire.RecordAckSubject(m.Reply, token)
				ack := func() {
					if tc.ack == "" && tc.status == "" {
						return
					}
					a := nats.NewMsg(to)
					if tc.guessed {
						a.Subject = m.Reply + ".r"
					}
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
					named = wire.RecordAckSubject("_INBOX.someone-else", token)
				}
				respond(t, m, map[string]string{wire.HeaderContentType: wire.ContentJSON, wire.HeaderRecordAck: named}, allow)
				if !tc.first {
					ack()
				}
			})
			wait := cmp.Or(tc.wait, 500*time.Millisecond)
			t0 := time.Now()
			d := check(t, s, wait)
			if took := time.Since(t0); took > wait+time.Second {
				t.Fatalf("the check took %v, its deadline %v", took, wait)
			}
			if d.Verdict != tc.verdict || d.Reasons[0].Rule != tc.rule || !strings.Contains(d.Reasons[0].Message, tc.msg) {
				t.Fatalf("decision %+v, want %s %s mentioning %q", d, tc.verdict, tc.rule, tc.msg)
			}
			var got []string
			for len(asked) > 0 {
				got = append(got, <-asked)
			}
			n := 1
			if tc.again {
				n = 2
			}
			if len(got) != n || !wire.ValidToken(got[0]) || n == 2 && got[1] != "" {
				t.Fatalf("the checks sent asked for their record's ack with %q; want a token, then (asked again) none", got)
			}
		})
	}
}

// TestCheckHearsOnlyItsSubjects: what comes below a check's reply subject
// other than its record's ack (a JetStream ack reflected there by anyone
// who may write audit events, say) does not reach the check.
func TestCheckHearsOnlyItsSubjects(t *testing.T) {
	s := bustest.Start(t)
	forger := s.Conn(t, home.RoleAdmin)
	fakePolicyd(t, s, func(m *nats.Msg) {
		for _, sub := range []string{m.Reply + ".r", m.Reply + ".x.y", wire.RecordAckSubject(m.Reply, wire.NewToken())} {
			if err := forger.Publish(sub, []byte(`{"verdict":"deny","reasons":[{"rule":"forged","message":"x"}]}`)); err != nil {
				t.Error(err)
			}
		}
		forger.Flush()
		respond(t, m, map[string]string{wire.HeaderContentType: wire.ContentJSON}, `{"verdict":"allow","reasons":[{"rule":"r","message":"fine"}]}`)
	})
	if d := check(t, s, 2*time.Second); d.Verdict != wire.VerdictAllow || d.Reasons[0].Rule != "r" {
		t.Fatalf("decision %+v, want the answer's allow", d)
	}
}
