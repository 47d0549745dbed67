package policyd_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/policy"
	"github.com/moatsec/moat/pkg/policyd"
	"github.com/moatsec/moat/pkg/profile"
	"github.com/moatsec/moat/pkg/profiled"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var quiet = slog.New(slog.DiscardHandler)

type stack struct {
	*bustest.Stack
	ws     string
	policy *policyd.Daemon
}

// start runs a bus, profiled and policyd in process.
func start(t testing.TB, cfg policyd.Config) *stack {
	t.Helper()
	s := bustest.Start(t)
	r, err := profile.NewResolver(profile.Options{MoatHome: s.Home.Dir})
	if err != nil {
		t.Fatal(err)
	}
	pd, err := profiled.Start(s.Conn(t, home.RoleProfiled), profiled.Config{Resolver: r, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pd.Stop() })
	if cfg.Engine == nil {
		cfg.Engine = policy.New(policy.Options{})
	}
	cfg.Logger = quiet
	d, err := policyd.Start(s.Conn(t, home.RolePolicyd), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop() })
	ws := filepath.Join(filepath.Dir(s.Home.Dir), "ws")
	if err := os.MkdirAll(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	return &stack{Stack: s, ws: ws, policy: d}
}

func (s *stack) check(t testing.TB, c *client.Client, profile string, argv ...string) wire.Decision {
	t.Helper()
	return c.Check(context.Background(), &wire.CheckRequest{Argv: argv, Workspace: s.ws, Profile: wire.RefName(profile)})
}

func TestCheckAndRecord(t *testing.T) {
	s := start(t, policyd.Config{})
	c := s.Client(t, home.RoleClient)
	d := c.Check(context.Background(), &wire.CheckRequest{RequestID: "req-42", Argv: []string{"curl", "https://example.com"},
		Workspace: s.ws, Profile: wire.RefName("offline")})
	if d.Verdict != wire.VerdictDeny || d.Reasons[0].Rule != "net.client" || d.DecidedBy != s.policy.ID() {
		t.Fatalf("decision %+v", d)
	}
	if d := s.check(t, c, "workspace-net", "curl", "https://pypi.org/simple/"); d.Verdict != wire.VerdictAllow { // a host on workspace-net's list
		t.Fatalf("workspace-net: %+v", d)
	}
	// A resolved profile is used as given.
	p, err := c.Resolve(context.Background(), &wire.ResolveRequest{Profile: "workspace-write", Workspace: s.ws})
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Check(context.Background(), &wire.CheckRequest{Argv: []string{"touch", "x"}, Profile: wire.RefResolved(p)}); d.Verdict != wire.VerdictAllow {
		t.Fatalf("resolved profile: %+v", d)
	}
	// The decision is in MOAT_AUDIT.
	js, _ := jetstream.New(s.Conn(t, home.RoleAdmin))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	st, _ := js.Stream(ctx, wire.AuditStream)
	raw, err := st.GetLastMsgForSubject(ctx, wire.AuditSubject("policyd", "policy.decision"))
	if err != nil {
		t.Fatal(err)
	}
	if raw.Header.Get(wire.HeaderVerdict) == "" {
		t.Fatalf("event lacks Moat-Verdict: %v", raw.Header)
	}
	var ev wire.AuditEvent
	wire.Decode(wire.Msgpack, raw.Data, &ev)
	if ev.Kind != "policy.decision" || ev.Verdict != wire.VerdictAllow || len(ev.Reasons) == 0 || ev.Detail["rules"] == nil {
		t.Fatalf("event %+v", ev)
	}
}

func TestCheckErrors(t *testing.T) {
	s := start(t, policyd.Config{})
	c := s.Client(t, home.RoleClient)
	tests := []struct {
		req  wire.CheckRequest
		rule string
		msg  string
	}{
		{wire.CheckRequest{Argv: []string{"ls"}, Workspace: s.ws, Profile: wire.RefName("godmode")}, wire.ReasonPolicyError, "unknown profile"},
		{wire.CheckRequest{Argv: nil, Workspace: s.ws}, wire.ReasonPolicyError, "argv is empty"},
		{wire.CheckRequest{Argv: []string{"ls"}, Workspace: s.ws, Approval: "sometimes"}, wire.ReasonPolicyError, "approval"},
		{wire.CheckRequest{Argv: []string{"ls"}, Workspace: "relative"}, wire.ReasonPolicyError, "relative"},
	}
	for _, tt := range tests {
		d := c.Check(context.Background(), &tt.req)
		if d.Verdict != wire.VerdictDeny || d.Reasons[0].Rule != tt.rule || !strings.Contains(d.Reasons[0].Message, tt.msg) {
			t.Errorf("%+v: %+v", tt.req, d)
		}
	}
}

// TestFailClosed: through pkg/client, a missing, stalled or garbling policyd
// is a deny within the deadline.
func TestFailClosed(t *testing.T) {
	s := bustest.Start(t)
	const deadline = 400 * time.Millisecond
	c := client.FromConn(s.Conn(t, home.RoleClient), deadline)
	req := func() *wire.CheckRequest {
		return &wire.CheckRequest{Argv: []string{"ls"}, Workspace: "/w", Profile: wire.RefName("offline")}
	}

	d := c.Check(context.Background(), req())
	if d.Verdict != wire.VerdictDeny || d.Reasons[0].Rule != wire.ReasonPolicyUnavailable { // unavailable: told at once, not timed out
		t.Fatalf("no policyd: %+v", d)
	}

	impostor := s.Conn(t, home.RolePolicyd) // only the policyd key may answer
	stall, _ := impostor.QueueSubscribe(wire.SubjectCheck, "q", func(*nats.Msg) {})
	impostor.Flush()
	t0 := time.Now()
	d = c.Check(context.Background(), req())
	took := time.Since(t0)
	if d.Verdict != wire.VerdictDeny || d.Reasons[0].Rule != wire.ReasonPolicyTimeout || took < deadline || took > deadline+5*time.Second { // waited its deadline, and no hang
		t.Fatalf("stalled policyd: %+v after %v", d, took)
	}
	stall.Unsubscribe()

	for _, garbage := range [][]byte{[]byte("\xc1\xff garbage"), []byte(`{"verdict":"maybe","reasons":[{"rule":"x","message":"y"}]}`), []byte(`{"verdict":"allow"}`)} {
		sub, _ := impostor.QueueSubscribe(wire.SubjectCheck, "q", func(m *nats.Msg) { m.Respond(garbage) })
		impostor.Flush()
		d = c.Check(context.Background(), req())
		if d.Verdict != wire.VerdictDeny || d.Reasons[0].Rule != wire.ReasonPolicyUnavailable {
			t.Fatalf("garbage %q: %+v", garbage, d)
		}
		sub.Unsubscribe()
	}
}

// approver answers the next question it sees with verdict, after delay.
// The test waits for its answer to be acked before it ends.
func approver(t *testing.T, s *stack, verdict string, delay time.Duration) <-chan wire.ApprovalAsk {
	t.Helper()
	seen := make(chan wire.ApprovalAsk, 1)
	var answering sync.WaitGroup
	c := s.Client(t, home.RoleApprover)
	sub, err := c.Conn().Subscribe(wire.SubjectApprovalAsk+".>", func(m *nats.Msg) {
		var q wire.ApprovalAsk
		if err := wire.Decode(wire.JSON, m.Data, &q); err != nil {
			t.Errorf("question: %v", err)
			return
		}
		seen <- q
		if verdict == "" {
			return
		}
		answering.Add(1)
		go func() {
			defer answering.Done()
			time.Sleep(delay)
			if _, err := c.Answer(context.Background(), &wire.ApprovalAnswer{ID: q.ID, Verdict: verdict, By: "alice", Reason: "looked fine"}); err != nil {
				t.Errorf("answer: %v", err)
			}
		}()
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Conn().Flush()
	t.Cleanup(func() { sub.Unsubscribe(); answering.Wait() })
	return seen
}

func TestApprovals(t *testing.T) {
	s := start(t, policyd.Config{ApprovalTimeout: 1500 * time.Millisecond})
	inline := []string{"python3", "-c", "print(1)"}
	// The client's own deadline (500ms) is shorter than the approval wait:
	// it stretches while a person is asked.
	c := client.FromConn(s.Conn(t, home.RoleClient), 500*time.Millisecond)
	ask := func(approval string) wire.Decision {
		return c.Check(context.Background(), &wire.CheckRequest{Argv: inline, Workspace: s.ws, Profile: wire.RefName("workspace-write"), Approval: approval})
	}

	if d := ask(""); d.Verdict != wire.VerdictPrompt {
		t.Fatalf("dry run: %+v", d)
	}
	// approval-never, not approval-timeout: nobody was asked.
	if d := ask(wire.ApprovalNever); d.Verdict != wire.VerdictDeny || d.Reasons[0].Rule != wire.ReasonApprovalNever {
		t.Fatalf("never: %+v", d)
	}

	seen := approver(t, s, wire.VerdictAllow, 800*time.Millisecond)
	d := ask(wire.ApprovalOnRequest)
	if d.Verdict != wire.VerdictAllow || d.Reasons[0].Rule != "approval.granted" || !strings.Contains(d.Reasons[0].Message, "alice") {
		t.Fatalf("approved: %+v", d)
	}
	if q := <-seen; q.RequestID == "" || q.Profile != "workspace-write" || len(q.Reasons) == 0 || q.ExpiresAt.Before(q.AskedAt) {
		t.Fatalf("question %+v", q)
	}

	s2 := start(t, policyd.Config{ApprovalTimeout: time.Second})
	c2 := s2.Client(t, home.RoleClient)
	approver(t, s2, wire.VerdictDeny, 100*time.Millisecond)
	d = c2.Check(context.Background(), &wire.CheckRequest{Argv: inline, Workspace: s2.ws, Profile: wire.RefName("offline"), Approval: wire.ApprovalOnRequest})
	if d.Verdict != wire.VerdictDeny || d.Reasons[0].Rule != "approval.denied" {
		t.Fatalf("refused: %+v", d)
	}
}

func TestApprovalTimeoutAndListing(t *testing.T) {
	s := start(t, policyd.Config{ApprovalTimeout: 5 * time.Second}) // long enough to stay pending on a loaded machine
	c := s.Client(t, home.RoleClient)
	seen := approver(t, s, "", 0) // sees, never answers
	var d wire.Decision
	done := make(chan struct{})
	go func() {
		d = c.Check(context.Background(), &wire.CheckRequest{Argv: []string{"node", "-e", "1"}, Workspace: s.ws, Profile: wire.RefName("offline"), Approval: wire.ApprovalOnRequest})
		close(done)
	}()
	q := <-seen
	// While it waits: it is listed, other checks are answered at once, and
	// the client key cannot answer it.
	if l := waitApprovals(t, s, 1); l[0].ID != q.ID {
		t.Fatalf("approvals = %+v, want %s", l, q.ID)
	}
	if other := s.check(t, c, "offline", "ls"); other.Verdict != wire.VerdictAllow {
		t.Fatalf("another check while a prompt waits: %+v", other)
	}
	select { // answered while the prompt still waits: not held up by it
	case <-done:
		t.Fatalf("the prompt ended before it was answered: %+v", d)
	default:
	}
	agent := s.Conn(t, home.RoleClient)
	agent.Publish(wire.ApprovalAnswerSubject(q.ID), []byte(`{"verdict":"allow"}`))
	agent.Flush()
	if agent.LastError() == nil {
		t.Fatal("the client key answered an approval")
	}
	<-done
	if d.Verdict != wire.VerdictDeny || d.Reasons[0].Rule != wire.ReasonApprovalTimeout {
		t.Fatalf("timeout: %+v", d)
	}
	if _, err := s.Client(t, home.RoleApprover).Answer(context.Background(), &wire.ApprovalAnswer{ID: q.ID, Verdict: "allow"}); wire.CodeOf(err) != wire.CodeNotFound {
		t.Fatalf("late answer: %v", err)
	}
}

// TestPolicydVanishes: if policyd dies while a person is asked, the caller
// still denies on its own once the approval's expiry (plus grace) passes.
func TestPolicydVanishes(t *testing.T) {
	s := start(t, policyd.Config{ApprovalTimeout: 300 * time.Millisecond})
	seen := approver(t, s, "", 0)
	c := client.FromConn(s.Conn(t, home.RoleClient), 200*time.Millisecond)
	var wg sync.WaitGroup
	wg.Add(1)
	var d wire.Decision
	go func() {
		defer wg.Done()
		d = c.Check(context.Background(), &wire.CheckRequest{Argv: []string{"ruby", "-e", "1"}, Workspace: s.ws, Profile: wire.RefName("offline"), Approval: wire.ApprovalOnRequest})
	}()
	<-seen
	s.Server.Close() // the whole bus goes: no answer will ever come
	wg.Wait()
	if d.Verdict != wire.VerdictDeny {
		t.Fatalf("decision %+v", d)
	}
}

func TestRulesWatcher(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.rules")
	// What Codex itself writes: an approved prefix and an approved host.
	os.WriteFile(path, []byte("prefix_rule(pattern=[\"make\"], decision=\"prompt\")\nnetwork_rule(host=\"pypi.org\", protocol=\"https\", decision=\"allow\")\n"), 0o644)
	e := policy.New(policy.Options{})
	w := &policyd.RulesWatcher{Engine: e, Paths: []string{dir}, PollInterval: 20 * time.Millisecond, Logger: quiet}
	if err := w.Load(); err != nil || e.Rules().Len() != 1 || len(e.Rules().NetworkRules()) != 1 {
		t.Fatalf("load: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	waitRules := func(n int) {
		t.Helper()
		for i := 0; i < 100; i++ {
			if e.Rules().Len() == n {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("rules = %d, want %d", e.Rules().Len(), n)
	}
	os.WriteFile(path, []byte("prefix_rule(pattern=[\"make\"])\nprefix_rule(pattern=[\"go\"])\n"), 0o644)
	waitRules(2)
	os.WriteFile(path, []byte("prefix_rule(pattern=[\"make\"]\n"), 0o644) // broken
	time.Sleep(150 * time.Millisecond)
	waitRules(2) // the old rules stay
	ws := t.TempDir()
	prof := &wire.Profile{Name: "workspace-write", Workspace: ws, FS: wire.FS{Write: []string{ws}}}
	said := func() string {
		t.Helper()
		d, err := e.Decide(&policy.Input{Argv: []string{"ls"}, Profile: prof})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range d.Reasons {
			if r.Rule == "file.not-reloaded" {
				return r.Message
			}
		}
		return ""
	}
	for i := 0; i < 100 && said() == ""; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if msg := said(); !strings.Contains(msg, path+":2") {
		t.Fatalf("decisions do not say the file is broken: %q", msg)
	}
	os.WriteFile(path, []byte("prefix_rule(pattern=[\"make\"])\n"), 0o644) // fixed
	waitRules(1)
	for i := 0; i < 100 && said() != ""; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if msg := said(); msg != "" {
		t.Fatalf("still reported after the fix: %q", msg)
	}
}
