package policyd_test

import (
	"context"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/policy"
	"github.com/moatsec/moat/pkg/policyd"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// rawCheck sends a check as any caller may, with an optional
// HeaderProfileHash, and returns the answer's message.
func rawCheck(t *testing.T, nc *nats.Conn, req *wire.CheckRequest, claim string) *nats.Msg {
	t.Helper()
	body, err := wire.Encode(wire.Msgpack, req)
	if err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg(wire.SubjectCheck)
	m.Data = body
	m.Header.Set(wire.HeaderContentType, wire.ContentMsgpack)
	if claim != "" {
		m.Header.Set(wire.HeaderProfileHash, claim)
	}
	reply, err := nc.RequestMsg(m, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return reply
}

func decisionOf(t *testing.T, m *nats.Msg) wire.Decision {
	t.Helper()
	if code := m.Header.Get(wire.HeaderErrorCode); code != "" {
		t.Fatalf("error %s: %s", code, m.Header.Get(wire.HeaderError))
	}
	var d wire.Decision
	if err := wire.DecodeLimit(wire.Msgpack, m.Data, &d, 1<<20); err != nil {
		t.Fatal(err)
	}
	return d
}

// A check may name a resolved profile by its hash once policyd keeps it:
// policyd keeps a profile only under the hash it computes itself (a false
// claim is not kept, so nobody can have a hash stand for another profile),
// judges a check by hash exactly as by the whole profile, and answers 404
// for a hash it does not keep.
func TestCheckProfileByHash(t *testing.T) {
	s := start(t, policyd.Config{})
	c := s.Client(t, home.RoleClient)
	nc := s.Conn(t, home.RoleClient)
	ctx := context.Background()
	p, err := c.Resolve(ctx, &wire.ResolveRequest{Profile: "workspace-write", Workspace: s.ws})
	if err != nil {
		t.Fatal(err)
	}
	trusted, err := c.Resolve(ctx, &wire.ResolveRequest{Profile: "workspace-net", Workspace: s.ws})
	if err != nil {
		t.Fatal(err)
	}
	h, err := wire.ProfileHash(p)
	if err != nil {
		t.Fatal(err)
	}
	curl := []string{"curl", "https://pypi.org/simple/"} // denied by workspace-write, allowed by workspace-net
	byHash := &wire.CheckRequest{Argv: curl, ProfileHash: h}

	if m := rawCheck(t, nc, byHash, ""); m.Header.Get(wire.HeaderErrorCode) != "404" {
		t.Fatalf("a hash nobody sent: %q %q, want 404", m.Header.Get(wire.HeaderErrorCode), m.Header.Get(wire.HeaderError))
	}
	// workspace-net's profile sent under workspace-write's hash is judged,
	// but not kept: the hash still stands for nothing.
	m := rawCheck(t, nc, &wire.CheckRequest{Argv: curl, Profile: wire.RefResolved(trusted)}, h)
	if got := m.Header.Get(wire.HeaderProfileCached); got != "" {
		t.Fatalf("a profile under another's hash was kept as %s", got)
	}
	if d := decisionOf(t, m); d.Verdict != wire.VerdictAllow {
		t.Fatalf("workspace-net, whole: %+v", d)
	}
	if m := rawCheck(t, nc, byHash, ""); m.Header.Get(wire.HeaderErrorCode) != "404" {
		t.Fatalf("after a false claim: %q %q, want 404", m.Header.Get(wire.HeaderErrorCode), m.Header.Get(wire.HeaderError))
	}

	whole := decisionOf(t, rawCheck(t, nc, &wire.CheckRequest{Argv: curl, Profile: wire.RefResolved(p)}, ""))
	m = rawCheck(t, nc, &wire.CheckRequest{Argv: curl, Profile: wire.RefResolved(p)}, h)
	if got := m.Header.Get(wire.HeaderProfileCached); got != h {
		t.Fatalf("kept as %q, want %s", got, h)
	}
	got := decisionOf(t, rawCheck(t, nc, byHash, ""))
	if got.Verdict != wire.VerdictDeny || got.Verdict != whole.Verdict || got.Reasons[0].Rule != whole.Reasons[0].Rule {
		t.Fatalf("by hash %+v, whole %+v; want the same deny", got, whole)
	}

	both := &wire.CheckRequest{Argv: curl, ProfileHash: h, Profile: wire.RefName("offline")}
	if m := rawCheck(t, nc, both, ""); m.Header.Get(wire.HeaderErrorCode) != "400" {
		t.Fatalf("profile and profile_hash both: %q, want 400", m.Header.Get(wire.HeaderErrorCode))
	}
}

// pkg/client sends a resolved profile whole until a policyd keeps it, then
// by hash; a policyd that does not keep it (restarted, another copy) costs
// one more round trip, never a wrong or failed decision.
func TestClientProfileByHash(t *testing.T) {
	s := start(t, policyd.Config{})
	c := s.Client(t, home.RoleClient)
	ctx := context.Background()
	p, err := c.Resolve(ctx, &wire.ResolveRequest{Profile: "workspace-write", Workspace: s.ws})
	if err != nil {
		t.Fatal(err)
	}
	// What goes on the bus, as a listener beside policyd sees it.
	listener := s.Conn(t, home.RolePolicyd)
	seen, err := listener.SubscribeSync(wire.SubjectCheck)
	if err == nil {
		err = listener.Flush() // the bus has the subscription before the first check
	}
	if err != nil {
		t.Fatal(err)
	}
	check := func(argv ...string) wire.Decision {
		return c.Check(ctx, &wire.CheckRequest{Argv: argv, Profile: wire.RefResolved(p)})
	}
	for range 3 {
		if d := check("ls", "-la"); d.Verdict != wire.VerdictAllow {
			t.Fatalf("ls: %+v", d)
		}
		if d := check("curl", "https://pypi.org/simple/"); d.Verdict != wire.VerdictDeny || d.Reasons[0].Rule != "net.client" {
			t.Fatalf("curl: %+v", d)
		}
	}
	var sizes []int
	for {
		m, err := seen.NextMsg(time.Second)
		if err != nil {
			break
		}
		var r wire.CheckRequest
		if err := wire.Decode(wire.Msgpack, m.Data, &r); err != nil {
			t.Fatal(err)
		}
		if r.ProfileHash != "" {
			sizes = append(sizes, len(m.Data))
		} else {
			sizes = append(sizes, -len(m.Data))
		}
	}
	t.Logf("request sizes %v (negative: the whole profile)", sizes)
	if len(sizes) != 6 || sizes[0] > 0 || sizes[1] < 0 || sizes[1]*4 > -sizes[0] {
		t.Fatalf("request sizes %v (negative: the whole profile); want the first whole, the other five by hash, each under a quarter of it", sizes)
	}
	// A policyd that keeps nothing takes over.
	if err := s.policy.Stop(); err != nil {
		t.Fatal(err)
	}
	fresh, err := policyd.Start(s.Conn(t, home.RolePolicyd), policyd.Config{Engine: policy.New(policy.Options{}), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Stop()
	for range 2 {
		d := check("curl", "https://pypi.org/simple/")
		if d.Verdict != wire.VerdictDeny || d.Reasons[0].Rule != "net.client" || d.DecidedBy != fresh.ID() {
			t.Fatalf("after the restart: %+v", d)
		}
	}
}
