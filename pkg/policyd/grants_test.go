package policyd_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/bus"
	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/policy"
	"github.com/moatsec/moat/pkg/policyd"
	"github.com/moatsec/moat/pkg/profile"
	"github.com/moatsec/moat/pkg/profiled"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// inline prompts in every built-in profile: code given on the command line.
var inline = []string{"python3", "-c", "print(1)"}

// grantCheck asks for argv on-request with a short approval timeout: an
// allow with approval.grant is a grant's use; a deny approval-timeout means
// a person was asked (nobody answers in these tests unless told).
func grantCheck(t *testing.T, c *client.Client, ws, prof, session string, argv ...string) wire.Decision {
	t.Helper()
	return c.Check(context.Background(), &wire.CheckRequest{Argv: argv, Workspace: ws, Profile: wire.RefName(prof),
		SessionID: session, Approval: wire.ApprovalOnRequest, ApprovalTimeoutMS: 300})
}

func covered(d wire.Decision) bool {
	return d.Verdict == wire.VerdictAllow && len(d.Reasons) > 0 && d.Reasons[0].Rule == policyd.ReasonGrant
}

func asked(d wire.Decision) bool {
	return d.Verdict == wire.VerdictDeny && len(d.Reasons) > 0 && d.Reasons[0].Rule == wire.ReasonApprovalTimeout
}

// grant asks for argv and answers the approval with a's For and Prefix; it
// returns the grant made.
func grant(t *testing.T, s *stack, prof, session string, a wire.ApprovalAnswer, argv ...string) *wire.Grant {
	t.Helper()
	c := s.Client(t, home.RoleClient)
	done := make(chan wire.Decision, 1)
	go func() {
		done <- c.Check(context.Background(), &wire.CheckRequest{Argv: argv, Workspace: s.ws, Profile: wire.RefName(prof),
			SessionID: session, Approval: wire.ApprovalOnRequest})
	}()
	ap := s.Client(t, home.RoleApprover)
	l := waitApprovals(t, s, 1)
	a.ID, a.Verdict, a.By = l[0].ID, wire.VerdictAllow, "alice"
	ack, err := ap.Answer(context.Background(), &a)
	if err != nil {
		t.Fatalf("answer %+v: %v", a, err)
	}
	if d := <-done; d.Verdict != wire.VerdictAllow {
		t.Fatalf("the asking check: %+v", d)
	}
	if ack.Grant == nil {
		t.Fatalf("answer for %q made no grant: %+v", a.For, ack)
	}
	return ack.Grant
}

// TestGrantExpires: a grant for a duration covers the command, then time
// passes and the next check asks again; the bucket forgets it too.
func TestGrantExpires(t *testing.T) {
	s := start(t, policyd.Config{})
	g := grant(t, s, "workspace-write", "", wire.ApprovalAnswer{For: "3s"}, inline...)
	c := s.Client(t, home.RoleClient)
	if d := grantCheck(t, c, s.ws, "workspace-write", "", inline...); !covered(d) || !strings.Contains(d.Reasons[0].Message, g.ID) {
		t.Fatalf("within the grant: %+v", d)
	}
	time.Sleep(time.Until(g.ExpiresAt) + 100*time.Millisecond)
	if d := grantCheck(t, c, s.ws, "workspace-write", "", inline...); !asked(d) {
		t.Fatalf("after the grant expired: %+v, want a person asked", d)
	}
	kv := grantsKV(t, s)
	for i := 0; ; i++ { // the bucket's own expiry, within a few seconds
		if _, err := kv.Get(context.Background(), g.ID); err == jetstream.ErrKeyNotFound {
			break
		}
		if i > 300 {
			t.Fatalf("grant %s still in the bucket long after it expired", g.ID)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestGrantUses: N uses, then a person is asked; a prefix covers longer commands.
func TestGrantUses(t *testing.T) {
	s := start(t, policyd.Config{})
	grant(t, s, "workspace-write", "", wire.ApprovalAnswer{For: "2uses", Prefix: []string{"python3", "-c"}}, inline...)
	c := s.Client(t, home.RoleClient)
	for i, argv := range [][]string{inline, {"python3", "-c", "print(2)"}} {
		if d := grantCheck(t, c, s.ws, "workspace-write", "", argv...); !covered(d) {
			t.Fatalf("use %d: %+v", i+1, d)
		}
	}
	if d := grantCheck(t, c, s.ws, "workspace-write", "", inline...); !asked(d) {
		t.Fatalf("third use of a 2-use grant: %+v", d)
	}
	if l, _ := s.Client(t, home.RoleApprover).Grants(context.Background()); len(l) != 0 {
		t.Fatalf("a spent grant is still listed: %+v", l)
	}
	// Each use is on record, and so is the grant.
	for kind, want := range map[string]uint64{wire.KindGrantUsed: 2, wire.KindGrantCreated: 1} {
		if got := eventsOf(t, s, kind, want); got != want {
			t.Fatalf("%d %s events on record, want %d", got, kind, want)
		}
	}
}

// eventsOf counts policyd's events of kind in MOAT_AUDIT, waiting a while for want.
func eventsOf(t *testing.T, s *stack, kind string, want uint64) uint64 {
	t.Helper()
	js, _ := jetstream.New(s.Conn(t, home.RoleAdmin))
	subj := wire.AuditSubject("policyd", kind)
	var got uint64
	for i := 0; i < 100; i++ {
		st, err := js.Stream(context.Background(), wire.AuditStream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(subj))
		if err != nil {
			t.Fatal(err)
		}
		if got = info.State.Subjects[subj]; got >= want {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
	return got
}

// TestGrantScope: another profile, workspace, session or command is not covered;
// and a rule's deny is never lifted.
func TestGrantScope(t *testing.T) {
	s := start(t, policyd.Config{})
	grant(t, s, "workspace-write", "s1", wire.ApprovalAnswer{For: "session"}, inline...)
	other := filepath.Join(filepath.Dir(s.ws), "other")
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	c := s.Client(t, home.RoleClient)
	if d := grantCheck(t, c, s.ws, "workspace-write", "s1", inline...); !covered(d) {
		t.Fatalf("in scope: %+v", d)
	}
	for name, d := range map[string]wire.Decision{
		"another profile":   grantCheck(t, c, s.ws, "offline", "s1", inline...),
		"another workspace": grantCheck(t, c, other, "workspace-write", "s1", inline...),
		"another session":   grantCheck(t, c, s.ws, "workspace-write", "s2", inline...),
		"a longer command":  grantCheck(t, c, s.ws, "workspace-write", "s1", append(inline, "x")...),
	} {
		if !asked(d) {
			t.Errorf("%s: %+v, want a person asked", name, d)
		}
	}
	// A deny is never grantable: a prefix grant on "rm" leaves rm -rf / denied.
	rm := []string{"rm", "-rf", "/"}
	if d := grantCheck(t, c, s.ws, "workspace-write", "s1", rm...); d.Verdict != wire.VerdictDeny || asked(d) {
		t.Fatalf("rm -rf /: %+v", d)
	}
}

// TestGrantRevoke: a revoked grant covers nothing at once; only approver
// and admin keys may list or revoke (403 for a client key), and a client
// key cannot grant.
func TestGrantRevoke(t *testing.T) {
	s := start(t, policyd.Config{})
	g := grant(t, s, "workspace-write", "", wire.ApprovalAnswer{For: "1h"}, inline...)
	cl := s.Client(t, home.RoleClient)
	if _, err := cl.Revoke(context.Background(), &wire.RevokeRequest{ID: g.ID}); wire.CodeOf(err) != wire.CodeDenied {
		t.Fatalf("revoke with the client key: %v, want 403", err)
	}
	if _, err := cl.Grants(context.Background()); wire.CodeOf(err) != wire.CodeDenied {
		t.Fatalf("list with the client key: %v, want 403", err)
	}
	if d := grantCheck(t, cl, s.ws, "workspace-write", "", inline...); !covered(d) {
		t.Fatalf("the client's failed revoke ended the grant: %+v", d)
	}
	ap := s.Client(t, home.RoleApprover)
	l, err := ap.Grants(context.Background())
	if err != nil || len(l) != 1 || l[0].ID != g.ID || l[0].By != "alice" || l[0].At.IsZero() || l[0].ExpiresAt.IsZero() {
		t.Fatalf("grants: %+v %v", l, err)
	}
	if _, err := ap.Revoke(context.Background(), &wire.RevokeRequest{ID: g.ID, By: "bob"}); err != nil {
		t.Fatal(err)
	}
	if d := grantCheck(t, cl, s.ws, "workspace-write", "", inline...); !asked(d) {
		t.Fatalf("after the revoke: %+v", d)
	}
	if _, err := ap.Revoke(context.Background(), &wire.RevokeRequest{ID: g.ID}); wire.CodeOf(err) != wire.CodeNotFound {
		t.Fatalf("second revoke: %v, want 404", err)
	}
	// A client key cannot answer, so cannot grant.
	done := make(chan wire.Decision, 1)
	go func() { done <- grantCheck(t, cl, s.ws, "workspace-write", "", inline...) }()
	q := waitApprovals(t, s, 1)
	if _, err := cl.Answer(context.Background(), &wire.ApprovalAnswer{ID: q[0].ID, Verdict: wire.VerdictAllow, For: "1h"}); wire.CodeOf(err) != wire.CodeDenied {
		t.Fatalf("grant with the client key: %v, want 403", err)
	}
	<-done
	if l, _ := ap.Grants(context.Background()); len(l) != 0 {
		t.Fatalf("grants after a client's try: %+v", l)
	}
}

// TestGrantAnswerErrors: bad grant answers are a 400 and leave the approval open.
func TestGrantAnswerErrors(t *testing.T) {
	s := start(t, policyd.Config{})
	cl := s.Client(t, home.RoleClient)
	done := make(chan wire.Decision, 1)
	go func() {
		done <- cl.Check(context.Background(), &wire.CheckRequest{Argv: inline, Workspace: s.ws, Profile: wire.RefName("workspace-write"),
			Approval: wire.ApprovalOnRequest})
	}()
	ap := s.Client(t, home.RoleApprover)
	q := waitApprovals(t, s, 1)
	for _, a := range []wire.ApprovalAnswer{
		{Verdict: wire.VerdictAllow, For: "forever"},
		{Verdict: wire.VerdictAllow, For: "0uses"},
		{Verdict: wire.VerdictAllow, For: "1000000h"},
		{Verdict: wire.VerdictDeny, For: "5m"},
		{Verdict: wire.VerdictAllow, For: "5m", Prefix: []string{"python3", "-m"}},
		{Verdict: wire.VerdictAllow, Prefix: []string{"python3"}},
		{Verdict: wire.VerdictAllow, Prefix: append(inline, "x")},
	} {
		a.ID = q[0].ID
		if _, err := ap.Answer(context.Background(), &a); wire.CodeOf(err) != wire.CodeBadRequest {
			t.Fatalf("answer %+v: %v, want 400", a, err)
		}
	}
	if _, err := ap.Answer(context.Background(), &wire.ApprovalAnswer{ID: q[0].ID, Verdict: wire.VerdictAllow}); err != nil {
		t.Fatalf("a good answer after the bad ones: %v", err)
	}
	if d := <-done; d.Verdict != wire.VerdictAllow {
		t.Fatalf("the check after the bad answers and a good one: %+v", d)
	}
}

// TestGrantSurvivesRestarts: a grant outlives policyd and busd.
func TestGrantSurvivesRestarts(t *testing.T) {
	s := start(t, policyd.Config{})
	g := grant(t, s, "workspace-write", "", wire.ApprovalAnswer{For: "3uses"}, inline...)
	s.policy.Stop()
	d2 := startPolicyd(t, s.Stack)
	_ = d2
	c := s.Client(t, home.RoleClient)
	if d := grantCheck(t, c, s.ws, "workspace-write", "", inline...); !covered(d) || !strings.Contains(d.Reasons[0].Message, "2 uses left") {
		t.Fatalf("after policyd restarted: %+v", d)
	}
	// busd restarts on the same MOAT_HOME: a new bus, the same store.
	s.Server.Close()
	b := bustest.StartAt(t, s.Home)
	startProfiled(t, b)
	startPolicyd(t, b)
	c = b.Client(t, home.RoleClient)
	var d wire.Decision
	for i := 0; i < 100; i++ { // policyd opens the bucket once JetStream is up
		if d = grantCheck(t, c, s.ws, "workspace-write", "", inline...); covered(d) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !covered(d) || !strings.Contains(d.Reasons[0].Message, g.ID) || !strings.Contains(d.Reasons[0].Message, "1 uses left") {
		t.Fatalf("after busd restarted: %+v", d)
	}
}

// TestGrantSharedByCopies: two policyd copies see the same grants, and a
// counted grant is spent exactly across them under concurrent checks.
func TestGrantSharedByCopies(t *testing.T) {
	s := start(t, policyd.Config{})
	second := startPolicyd(t, s.Stack)
	const uses = 5
	grant(t, s, "workspace-write", "", wire.ApprovalAnswer{For: "5uses"}, inline...)
	var allowed, asks atomic.Int32
	by := sync.Map{}
	var wg sync.WaitGroup
	for i := 0; i < 24; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := grantCheck(t, s.Client(t, home.RoleClient), s.ws, "workspace-write", "", inline...)
			switch {
			case covered(d):
				allowed.Add(1)
				by.Store(d.DecidedBy, true)
			case asked(d):
				asks.Add(1)
			default:
				t.Errorf("%+v", d)
			}
		}()
	}
	wg.Wait()
	if allowed.Load() != uses || asks.Load() != 24-uses {
		t.Fatalf("%d checks covered and %d asked, want %d and %d", allowed.Load(), asks.Load(), uses, 24-uses)
	}
	n := 0
	by.Range(func(k, _ any) bool { n++; return true })
	t.Logf("uses spent by %d policyd copies (%s and %s)", n, s.policy.ID(), second.ID())
	// A grant made through one copy is listed and used by the other.
	g := grant(t, s, "offline", "", wire.ApprovalAnswer{For: "1h"}, inline...)
	s.policy.Stop()
	onlyPolicyd(t, s, second.ID())
	c := s.Client(t, home.RoleClient)
	if d := grantCheck(t, c, s.ws, "offline", "", inline...); !covered(d) || d.DecidedBy != second.ID() {
		t.Fatalf("the other copy: %+v", d)
	}
	if l, _ := s.Client(t, home.RoleApprover).Grants(context.Background()); len(l) != 1 || l[0].ID != g.ID {
		t.Fatalf("the other copy lists %+v", l)
	}
}

// TestGrantRule: a rule grant writes its prefix_rule to the grants rules file.
func TestGrantRule(t *testing.T) {
	file := filepath.Join(t.TempDir(), "rules", "grants.rules")
	s := start(t, policyd.Config{RulesFile: file})
	g := grant(t, s, "workspace-write", "", wire.ApprovalAnswer{For: "rule", Prefix: []string{"python3", "-c"}}, inline...)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `prefix_rule(pattern = ["python3", "-c"], decision = "allow"`) || !strings.Contains(string(b), g.ID) {
		t.Fatalf("rules file:\n%s", b)
	}
	if _, err := policy.LoadRules(file); err != nil {
		t.Fatalf("the written rule does not load: %v", err)
	}
	if !g.ExpiresAt.IsZero() || g.Uses != 0 {
		t.Fatalf("a rule grant ends only when revoked: %+v", g)
	}
	if d := grantCheck(t, s.Client(t, home.RoleClient), s.ws, "workspace-write", "", "python3", "-c", "2"); !covered(d) {
		t.Fatalf("covered by the rule grant: %+v", d)
	}
}

func grantsKV(t *testing.T, s *stack) jetstream.KeyValue {
	t.Helper()
	js, _ := jetstream.New(s.Conn(t, home.RoleAdmin))
	kv, err := js.KeyValue(context.Background(), wire.GrantsBucket)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func startPolicyd(t *testing.T, b *bustest.Stack) *policyd.Daemon {
	t.Helper()
	d, err := policyd.Start(b.Conn(t, home.RolePolicyd), policyd.Config{Engine: policy.New(policy.Options{}), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop() })
	return d
}

func startProfiled(t *testing.T, b *bustest.Stack) {
	t.Helper()
	r, err := profile.NewResolver(profile.Options{MoatHome: b.Home.Dir})
	if err != nil {
		t.Fatal(err)
	}
	pd, err := profiled.Start(b.Conn(t, home.RoleProfiled), profiled.Config{Resolver: r, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pd.Stop() })
}

// TestGrantWatcherFollowsBusdRestart: busd restarts in place (same address,
// same store) under running policyd copies: each reconnects, a grant made
// before is still spent exactly, and a grant made through one copy after
// the restart reaches the other's memory.
func TestGrantWatcherFollowsBusdRestart(t *testing.T) {
	s := start(t, policyd.Config{})
	second := startPolicyd(t, s.Stack)
	grant(t, s, "workspace-write", "", wire.ApprovalAnswer{For: "2uses"}, inline...)
	addr := strings.TrimPrefix(s.URL, "nats://")
	s.Server.Close()
	srv, err := bus.Start(context.Background(), bus.Config{Home: s.Home, Listen: addr, Logger: quiet})
	if err != nil {
		t.Fatalf("restart busd on %s: %v", addr, err)
	}
	t.Cleanup(srv.Close)
	c := s.Client(t, home.RoleClient)
	var d wire.Decision
	for i := 0; i < 100; i++ { // the daemons reconnect on their own
		if d = grantCheck(t, c, s.ws, "workspace-write", "", inline...); covered(d) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !covered(d) || !strings.Contains(d.Reasons[0].Message, "1 uses left") {
		t.Fatalf("after busd restarted in place: %+v", d)
	}
	g := grant(t, s, "offline", "", wire.ApprovalAnswer{For: "1h"}, inline...)
	s.policy.Stop() // only the second copy is left: it must have g in memory
	onlyPolicyd(t, s, second.ID())
	for i := 0; i < 20; i++ { // its watcher starts anew once it has reconnected
		if d = grantCheck(t, c, s.ws, "offline", "", inline...); covered(d) {
			break
		}
	}
	if !covered(d) || d.DecidedBy != second.ID() || !strings.Contains(d.Reasons[0].Message, g.ID) {
		t.Fatalf("a grant made after the restart, on the other copy (%s; the first was %s): %+v", second.ID(), s.policy.ID(), d)
	}
}

// onlyPolicyd waits until id is the one policyd that answers a ping.
func onlyPolicyd(t *testing.T, s *stack, id string) {
	t.Helper()
	c := s.Client(t, home.RoleClient)
	var got []string
	for i := 0; i < 100; i++ {
		l, _ := c.Ping(context.Background(), 200*time.Millisecond)
		got = got[:0]
		for _, p := range l {
			if p.Name == wire.ServicePolicyd {
				got = append(got, p.ID)
			}
		}
		if len(got) == 1 && got[0] == id {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("policyd copies answering: %v, want only %s", got, id)
}

// TestGrantRuleNotUTF8: a rule grant for a command whose words are not
// UTF-8 cannot be written as a Starlark string that matches exactly: it is
// a 400 (the approval stays open), and the rules file still loads; a prefix
// of valid words can still be granted as a rule.
func TestGrantRuleNotUTF8(t *testing.T) {
	file := filepath.Join(t.TempDir(), "rules", "grants.rules")
	s := start(t, policyd.Config{RulesFile: file})
	argv := []string{"python3", "-c", "print('\xff\xfe')"}
	cl := s.Client(t, home.RoleClient)
	done := make(chan wire.Decision, 1)
	go func() {
		done <- cl.Check(context.Background(), &wire.CheckRequest{Argv: argv, Workspace: s.ws, Profile: wire.RefName("workspace-write"),
			Approval: wire.ApprovalOnRequest})
	}()
	ap := s.Client(t, home.RoleApprover)
	q := waitApprovals(t, s, 1)
	if _, err := ap.Answer(context.Background(), &wire.ApprovalAnswer{ID: q[0].ID, Verdict: wire.VerdictAllow, For: "rule"}); wire.CodeOf(err) != wire.CodeBadRequest {
		t.Fatalf("a rule for a word that is not UTF-8: %v, want 400", err)
	}
	if _, err := policy.LoadRules(file); err != nil {
		t.Fatalf("the rules file no longer loads: %v", err)
	}
	ack, err := ap.Answer(context.Background(), &wire.ApprovalAnswer{ID: q[0].ID, Verdict: wire.VerdictAllow, For: "rule", Prefix: argv[:2]})
	if err != nil || ack.Grant == nil {
		t.Fatalf("a rule for its UTF-8 prefix: %+v %v", ack, err)
	}
	if d := <-done; d.Verdict != wire.VerdictAllow {
		t.Fatalf("the asking check: %+v", d)
	}
	if _, err := policy.LoadRules(file); err != nil {
		t.Fatalf("the rules file no longer loads: %v", err)
	}
	if d := grantCheck(t, cl, s.ws, "workspace-write", "", argv...); !covered(d) {
		t.Fatalf("covered by the prefix rule grant: %+v", d)
	}
}
