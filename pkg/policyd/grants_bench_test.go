package policyd

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/policy"
	"github.com/moatsec/moat/pkg/profile"
	"github.com/moatsec/moat/pkg/wire"
)

// BenchmarkDecisionGrants: a prompting decision as check makes it, without
// grants (the baseline) and consulting a grants cache of 2000 grants (1000
// in the command's own workspace and profile, some of them prefixes of its
// program, none covering it), as every on-request prompt does before it
// asks. It reports both and how much slower the second is (%-slower), and
// the lookup alone as a share of the decision without it (%-lookup).
func BenchmarkDecisionGrants(b *testing.B) {
	dir := b.TempDir()
	h, err := home.New(filepath.Join(dir, "moat"))
	if err != nil {
		b.Fatal(err)
	}
	if err := h.Init(false); err != nil {
		b.Fatal(err)
	}
	r, err := profile.NewResolver(profile.Options{MoatHome: h.Dir})
	if err != nil {
		b.Fatal(err)
	}
	prof, err := r.Resolve(&wire.ResolveRequest{Profile: "workspace-write", Workspace: dir})
	if err != nil {
		b.Fatal(err)
	}
	in := &policy.Input{Argv: []string{"python3", "-c", "print(1)"}, Workspace: prof.Workspace, Profile: prof}
	g := &grants{idx: newIndex()}
	for i := range 2000 {
		ws := prof.Workspace
		if i%2 == 1 {
			ws = fmt.Sprintf("/elsewhere/%d", i)
		}
		gr := &wire.Grant{ID: fmt.Sprint(i), Workspace: ws, Profile: prof.Name, Argv: []string{"python3", "-c", fmt.Sprint(i)}, Prefix: i%3 == 0,
			ExpiresAt: time.Now().Add(time.Hour)}
		g.idx.put(gr)
	}
	d := &Daemon{cfg: Config{Engine: policy.New(policy.Options{}), Deadline: DefaultDeadline}, grants: g}
	// Interleaved, each first in turn, so that the load of a shared machine
	// and the caches fall on both alike.
	decide := func(consult bool) time.Duration {
		t0 := time.Now()
		if dec := d.evaluate(context.Background(), in); dec.Verdict != wire.VerdictPrompt {
			b.Fatalf("%+v", dec)
		}
		if consult && len(d.grants.candidates(prof.Workspace, prof.Name, "s", in.Argv, time.Now())) != 0 {
			b.Fatal("a grant covers the command")
		}
		return time.Since(t0)
	}
	var without, with, lookup time.Duration
	i := 0
	for b.Loop() {
		if i++; i%2 == 0 {
			without += decide(false)
			with += decide(true)
		} else {
			with += decide(true)
			without += decide(false)
		}
		t0 := time.Now()
		d.grants.candidates(prof.Workspace, prof.Name, "s", in.Argv, time.Now())
		lookup += time.Since(t0)
	}
	b.ReportMetric(float64(without.Nanoseconds())/float64(b.N), "ns-without")
	b.ReportMetric(float64(with.Nanoseconds())/float64(b.N), "ns-with-grants")
	b.ReportMetric(float64(lookup.Nanoseconds())/float64(b.N), "ns-lookup")
	b.ReportMetric(100*(float64(with)/float64(without)-1), "%-slower")
	// The lookup alone against the decision it is added to: steadier on a
	// loaded machine than the difference of two sums of decisions.
	b.ReportMetric(100*float64(lookup)/float64(without), "%-lookup")
}
