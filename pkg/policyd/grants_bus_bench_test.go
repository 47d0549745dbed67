package policyd_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/policyd"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkCheckGrantOverBus: moat.policy.check over the bus, one at a
// time, for a command the rules allow (the baseline: no grant consulted)
// and for a prompting command that a grant covers (the grant read back from
// the bucket and its use recorded, then the allow recorded), interleaved.
// Both are sandboxd's checks (moat.policy.check.resolved): grants cover no
// profile a client sends whole.
func BenchmarkCheckGrantOverBus(b *testing.B) {
	s := start(b, policyd.Config{})
	c := s.Client(b, home.RoleSandboxd)
	p, err := c.Resolve(context.Background(), &wire.ResolveRequest{Profile: "workspace-write", Workspace: s.ws})
	if err != nil {
		b.Fatal(err)
	}
	js, _ := jetstream.New(s.Conn(b, home.RoleAdmin))
	kv, err := js.KeyValue(context.Background(), wire.GrantsBucket)
	if err != nil {
		b.Fatal(err)
	}
	g := wire.Grant{ID: wire.NewID(), Kind: "duration", Workspace: p.Workspace, Profile: p.Name, Argv: []string{"python3", "-c"},
		Prefix: true, By: "bench", At: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	body, _ := wire.Encode(wire.JSON, &g)
	if _, err := kv.Put(context.Background(), g.ID, body); err != nil {
		b.Fatal(err)
	}
	plain := &wire.CheckRequest{Argv: []string{"ls", "-la"}, Profile: wire.RefResolved(p), Approval: wire.ApprovalOnRequest}
	granted := &wire.CheckRequest{Argv: []string{"python3", "-c", "print(1)"}, Profile: wire.RefResolved(p), Approval: wire.ApprovalOnRequest,
		ApprovalTimeoutMS: 1}
	for i := 0; i < 100; i++ { // the watcher brings the grant to policyd's memory
		if d := c.CheckResolved(context.Background(), granted, nil); d.Verdict == wire.VerdictAllow {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var lp, lg []time.Duration
	for b.Loop() {
		for _, r := range []*wire.CheckRequest{plain, granted} {
			r.RequestID = ""
			t0 := time.Now()
			if d := c.CheckResolved(context.Background(), r, nil); d.Verdict != wire.VerdictAllow {
				b.Fatalf("%v: %+v", r.Argv, d)
			}
			if r == plain {
				lp = append(lp, time.Since(t0))
			} else {
				lg = append(lg, time.Since(t0))
			}
		}
	}
	p50 := func(l []time.Duration) float64 {
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
		return float64(l[len(l)/2].Microseconds())
	}
	b.ReportMetric(p50(lp), "p50-µs-allow")
	b.ReportMetric(p50(lg), "p50-µs-grant")
}
