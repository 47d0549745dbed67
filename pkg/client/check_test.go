package client_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// fakePolicyd answers moat.policy.check with answer, on the policyd key, as a
// broken or hostile policyd would.
func fakePolicyd(t *testing.T, s *bustest.Stack, answer func(m *nats.Msg)) {
	t.Helper()
	nc := s.Conn(t, home.RolePolicyd)
	sub, err := nc.QueueSubscribe(wire.SubjectCheck, wire.DefaultQueueGroup, answer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

func respond(t *testing.T, m *nats.Msg, hdr map[string]string, body string) {
	r := nats.NewMsg(m.Reply)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	r.Data = []byte(body)
	if err := m.RespondMsg(r); err != nil {
		t.Error(err)
	}
}

func check(t *testing.T, s *bustest.Stack, timeout time.Duration) wire.Decision {
	t.Helper()
	c := s.Client(t, home.RoleClient)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return c.Check(ctx, &wire.CheckRequest{Argv: []string{"true"}, Profile: wire.RefName("offline")})
}

// TestCheckFailsClosed: every way policyd can fail to answer properly is a
// deny whose reason says which; nothing but a well-formed decision allows.
func TestCheckFailsClosed(t *testing.T) {
	json := map[string]string{wire.HeaderContentType: wire.ContentJSON}
	for _, tc := range []struct {
		name   string
		answer func(t *testing.T, m *nats.Msg) // nil: no policyd at all
		rule   string
		msg    string
	}{
		{"no policyd", nil, wire.ReasonPolicyUnavailable, "no policyd is running"},
		{"silent", func(*testing.T, *nats.Msg) {}, wire.ReasonPolicyTimeout, "no decision from policyd"}, // the timer or the context, whichever fires first
		{"garbage", func(t *testing.T, m *nats.Msg) { respond(t, m, nil, "\xc1\xc1") }, wire.ReasonPolicyUnavailable, "garbage"},
		{"unknown verdict", func(t *testing.T, m *nats.Msg) {
			respond(t, m, json, `{"verdict":"maybe","reasons":[{"rule":"x","message":"y"}]}`)
		}, wire.ReasonPolicyUnavailable, "unknown verdict"},
		{"allow without reason", func(t *testing.T, m *nats.Msg) { respond(t, m, json, `{"verdict":"allow"}`) }, wire.ReasonPolicyUnavailable, "without a reason"},
		{"unknown field", func(t *testing.T, m *nats.Msg) {
			respond(t, m, json, `{"verdict":"allow","reasons":[{"rule":"x","message":"y"}],"sneaky":1}`)
		}, wire.ReasonPolicyUnavailable, "garbage"},
		{"error 503", func(t *testing.T, m *nats.Msg) {
			respond(t, m, map[string]string{wire.HeaderErrorCode: "503", wire.HeaderError: "rules not loaded"}, "")
		}, wire.ReasonPolicyUnavailable, "rules not loaded"},
		{"error 500", func(t *testing.T, m *nats.Msg) {
			respond(t, m, map[string]string{wire.HeaderErrorCode: "500", wire.HeaderError: "boom"}, "")
		}, wire.ReasonPolicyError, "boom"},
		{"error without number", func(t *testing.T, m *nats.Msg) {
			respond(t, m, map[string]string{wire.HeaderErrorCode: "allow", wire.HeaderError: "?"}, "")
		}, wire.ReasonPolicyError, "?"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := bustest.Start(t)
			if tc.answer != nil {
				fakePolicyd(t, s, func(m *nats.Msg) { tc.answer(t, m) })
			}
			d := check(t, s, 500*time.Millisecond)
			if d.Verdict != wire.VerdictDeny || len(d.Reasons) != 1 || d.Reasons[0].Rule != tc.rule || !strings.Contains(d.Reasons[0].Message, tc.msg) {
				t.Fatalf("decision %+v, want deny %s mentioning %q", d, tc.rule, tc.msg)
			}
		})
	}
}

// TestCheckWellFormed: a proper answer passes through unchanged, and an
// interim approval notice stretches the deadline to its expiry.
func TestCheckWellFormed(t *testing.T) {
	s := bustest.Start(t)
	fakePolicyd(t, s, func(m *nats.Msg) {
		go func() {
			exp := time.Now().Add(3 * time.Second).UTC().Format(time.RFC3339Nano)
			respond(t, m, map[string]string{wire.HeaderApprovalID: "a1", wire.HeaderApprovalExpires: exp}, "")
			time.Sleep(700 * time.Millisecond) // past the caller's own 300 ms deadline
			respond(t, m, map[string]string{wire.HeaderContentType: wire.ContentJSON},
				`{"verdict":"allow","reasons":[{"rule":"approved","message":"a person approved it"}],"decided_by":"fake"}`)
		}()
	})
	short, err := client.Dial(context.Background(), client.Options{URL: s.URL, Role: home.RoleClient, Timeout: 300 * time.Millisecond}.Fill(s.Home))
	if err != nil {
		t.Fatal(err)
	}
	defer short.Close()
	d := short.Check(context.Background(), &wire.CheckRequest{Argv: []string{"true"}, Profile: wire.RefName("offline")})
	if d.Verdict != wire.VerdictAllow || d.Reasons[0].Rule != "approved" || d.DecidedBy != "fake" {
		t.Fatalf("decision %+v, want the approved allow", d)
	}
}
