//go:build linux

package sandboxd_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const askProfile = `[profiles.web]
extends = "workspace-write"
net = "allowlist"
net_allow = ["allowed.test"]
net_deny = ["banned.test"]
`

// answerWhenAsked waits for the one network ask about dest, then answers
// it; it returns the approval id.
func answerWhenAsked(t *testing.T, ap *client.Client, dest string, a wire.ApprovalAnswer) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		l, err := ap.Approvals(context.Background(), 200*time.Millisecond)
		if err != nil {
			t.Errorf("approvals: %v", err)
			return ""
		}
		for _, q := range l {
			if q.Net == nil || q.Net.Dest() != dest {
				continue
			}
			if d, ok := wire.NetDest(q.Argv); !ok || d != dest {
				t.Errorf("the ask for %s stands as argv %q", dest, q.Argv)
			}
			a.ID = q.ID
			if _, err := ap.Answer(context.Background(), &a); err != nil {
				t.Errorf("answer %s: %v", q.ID, err)
			}
			return q.ID
		}
	}
	t.Errorf("no network ask for %s came", dest)
	return ""
}

// runAnswered runs script while an approver answers the ask about dest.
func (n *netStack) runAnswered(t *testing.T, c, ap *client.Client, session, script, dest string, a wire.ApprovalAnswer) (*wire.RunResult, string) {
	t.Helper()
	id := make(chan string, 1)
	go func() { id <- answerWhenAsked(t, ap, dest, a) }()
	res := n.run(t, c, &wire.RunRequest{Profile: "web", SessionID: session}, script)
	return res, <-id
}

// TestNetAskThroughApproval: under approval on-request a host the profile
// does not allow is asked for through policyd's approvals while the
// connection waits. Approved, the request goes through (the server sees one
// connection); refused, it gets the proxy's 403 and the server sees none;
// for the run, one ask covers the run's later connections; for the
// session, a grant covers the next run. A net_deny host is never asked
// about. Every ask and answer is on record.
func TestNetAskThroughApproval(t *testing.T) {
	n := startNetStack(t, askProfile, "")
	c := n.Client(t, home.RoleClient)
	ap := n.Client(t, home.RoleApprover)
	var asks atomic.Int64
	sub, err := ap.Conn().Subscribe(wire.SubjectApprovalAsk+".>", func(*nats.Msg) { asks.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	ap.Conn().Flush()
	// The host hides in a variable, so policyd cannot judge it from the
	// command line: the proxy meets it.
	once := `H=asked.test; curl -sS -o /dev/null -w '%{http_code}' "http://$H/x"`

	t.Run("approved once", func(t *testing.T) {
		res, id := n.runAnswered(t, c, ap, "s1", once, "asked.test:80", wire.ApprovalAnswer{Verdict: wire.VerdictAllow, By: "tester"})
		if string(res.Stdout) != "200" || n.srv["asked.test"].Conns.Load() != 1 || len(res.NetDenied) != 0 {
			t.Fatalf("stdout %q, stderr %q, server connections %d, denied %+v", res.Stdout, res.Stderr, n.srv["asked.test"].Conns.Load(), res.NetDenied)
		}
		if !strings.Contains(string(res.Stderr), "moat: network access to asked.test:80 needs a person's approval (net.not-allowed)") {
			t.Fatalf("stderr %q", res.Stderr)
		}
		n.onRecord(t, res.RequestID, id)
	})
	t.Run("refused", func(t *testing.T) {
		res, _ := n.runAnswered(t, c, ap, "s1", once, "asked.test:80", wire.ApprovalAnswer{Verdict: wire.VerdictDeny, By: "tester", Reason: "not today"})
		if string(res.Stdout) != "403" || n.srv["asked.test"].Conns.Load() != 1 {
			t.Fatalf("stdout %q, stderr %q, server connections %d", res.Stdout, res.Stderr, n.srv["asked.test"].Conns.Load())
		}
		if len(res.NetDenied) != 1 || res.NetDenied[0].Dest != "asked.test:80" || res.NetDenied[0].Rule != "net.not-allowed" ||
			!strings.Contains(res.NetDenied[0].Reason, "not today") {
			t.Fatalf("net_denied %+v", res.NetDenied)
		}
	})
	t.Run("for the run", func(t *testing.T) {
		before, asked := n.srv["asked.test"].Conns.Load(), asks.Load()
		twice := once + `; echo; curl -sS -o /dev/null -w '%{http_code}' "http://$H/y"`
		res, _ := n.runAnswered(t, c, ap, "s1", twice, "asked.test:80", wire.ApprovalAnswer{Verdict: wire.VerdictAllow, By: "tester", For: wire.GrantRun})
		if string(res.Stdout) != "200\n200" || n.srv["asked.test"].Conns.Load() != before+2 || asks.Load() != asked+1 {
			t.Fatalf("stdout %q, stderr %q, connections %d→%d, asks %d→%d", res.Stdout, res.Stderr, before, n.srv["asked.test"].Conns.Load(), asked, asks.Load())
		}
	})
	t.Run("for the session", func(t *testing.T) {
		res, _ := n.runAnswered(t, c, ap, "s2", once, "asked.test:80", wire.ApprovalAnswer{Verdict: wire.VerdictAllow, By: "tester", For: wire.GrantSession})
		if string(res.Stdout) != "200" {
			t.Fatalf("stdout %q, stderr %q", res.Stdout, res.Stderr)
		}
		before, asked := n.srv["asked.test"].Conns.Load(), asks.Load()
		res = n.run(t, c, &wire.RunRequest{Profile: "web", SessionID: "s2"}, once) // nobody answers: the grant does
		if string(res.Stdout) != "200" || n.srv["asked.test"].Conns.Load() != before+1 || asks.Load() != asked {
			t.Fatalf("stdout %q, stderr %q, asks %d→%d", res.Stdout, res.Stderr, asked, asks.Load())
		}
	})
	t.Run("never for net_deny or a special address", func(t *testing.T) {
		asked := asks.Load()
		res := n.run(t, c, &wire.RunRequest{Profile: "web", SessionID: "s1"},
			`B=banned.test L=127.0.0.1; curl -sS -o /dev/null -w '%{http_code} ' "http://$B/"; NO_PROXY= no_proxy= curl -sS -o /dev/null -w '%{http_code}' "http://$L:9/"`)
		ap.Conn().Flush()
		if string(res.Stdout) != "403 403" || asks.Load() != asked || n.srv["banned.test"].Conns.Load() != 0 {
			t.Fatalf("stdout %q, stderr %q, asks %d→%d", res.Stdout, res.Stderr, asked, asks.Load())
		}
		if strings.Contains(string(res.Stderr), "approval") {
			t.Fatalf("stderr %q", res.Stderr)
		}
	})
}

// onRecord checks the audit stream for an approved network ask: the
// question, policyd's decision naming the destination and the answer, and
// the connection sandboxd made on it.
func (n *netStack) onRecord(t *testing.T, requestID, approvalID string) {
	t.Helper()
	js, err := jetstream.New(n.Conn(t, home.RoleAdmin))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, wire.AuditStream)
	if err != nil {
		t.Fatal(err)
	}
	last := func(source, kind string) wire.AuditEvent {
		raw, err := st.GetLastMsgForSubject(ctx, wire.AuditSubject(source, kind))
		if err != nil {
			t.Fatalf("%s %s: %v", source, kind, err)
		}
		var ev wire.AuditEvent
		if err := wire.Decode(wire.Msgpack, raw.Data, &ev); err != nil {
			t.Fatal(err)
		}
		return ev
	}
	if ev := last("policyd", wire.KindApprovalAsked); ev.RequestID != requestID || ev.Detail["approval_id"] != approvalID {
		t.Errorf("approval.asked %+v", ev)
	}
	if ev := last("policyd", wire.KindPolicyDecision); ev.RequestID != requestID || ev.Verdict != wire.VerdictAllow ||
		ev.Detail["net"] != "asked.test:80" || len(ev.Reasons) == 0 || ev.Reasons[0].Rule != "approval.granted" || !strings.Contains(ev.Reasons[0].Message, "tester") {
		t.Errorf("policy.decision %+v", ev)
	}
	if ev := last("sandboxd", wire.KindNetConn); ev.RequestID != requestID || ev.Verdict != wire.VerdictAllow || ev.Detail["rule"] != "net.approved" {
		t.Errorf("net.conn %+v", ev)
	}
}

// TestNetAskTimesOut: an ask nobody answers ends, at policyd's approval
// timeout, in the ordinary denial; the server saw nothing. A rules file's
// prompt is asked even for a host the profile allows.
func TestNetAskTimesOut(t *testing.T) {
	n := startNetStack(t, askProfile, `network_rule(host = "allowed.test", protocol = "http", decision = "prompt")`+"\n", time.Second)
	c := n.Client(t, home.RoleClient)
	res := n.run(t, c, &wire.RunRequest{Profile: "web", SessionID: "s1"},
		`A=asked.test P=allowed.test; curl -sS -o /dev/null -w '%{http_code} ' "http://$A/"; curl -sS -o /dev/null -w '%{http_code}' "http://$P/"`)
	if string(res.Stdout) != "403 403" || n.srv["asked.test"].Conns.Load()+n.srv["allowed.test"].Conns.Load() != 0 {
		t.Fatalf("stdout %q, stderr %q", res.Stdout, res.Stderr)
	}
	if len(res.NetDenied) != 2 || res.NetDenied[0].Rule != "net.prompt" || res.NetDenied[1].Rule != "net.not-allowed" ||
		!strings.Contains(res.NetDenied[1].Reason, "nobody answered") {
		t.Fatalf("net_denied %+v", res.NetDenied)
	}
	if !strings.Contains(string(res.Stderr), "moat: network access to allowed.test:80 needs a person's approval (net.prompt)") {
		t.Fatalf("stderr %q", res.Stderr)
	}
}
