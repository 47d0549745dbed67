//go:build linux

package chaos

import (
	"errors"
	"strings"
	"testing"

	"github.com/moatsec/moat/pkg/wire"
)

// books, which TestChaos's verdict rests on, passes a round whose records
// keep moat's promises — a resolution or check done again across a busd
// restart, agreeing, up to maxRepeats times — and fails each broken one.
func TestBooks(t *testing.T) {
	ran := &wire.RunResult{Decision: &wire.Decision{Verdict: wire.VerdictAllow}}
	refused := wire.Errorf(wire.CodeUnavailable, "nothing ran")
	allow, deny := checkedPrefix+wire.VerdictAllow, checkedPrefix+wire.VerdictDeny
	good := map[string]int{wire.KindProfileResolved: 1, wire.KindPolicyDecision: 1, allow: 1, wire.KindRunDecision: 1, allowed: 1, wire.KindRunExit: 1}
	with := func(change map[string]int) map[string]int {
		r := map[string]int{}
		for k, n := range good {
			r[k] = n
		}
		for k, n := range change {
			if r[k] = n; n == 0 {
				delete(r, k)
			}
		}
		return r
	}
	for _, tc := range []struct {
		name string
		res  *wire.RunResult
		err  error
		r    map[string]int
		want string // in the one problem reported, "" for none
	}{
		{"ran", ran, nil, good, ""},
		{"resolved and checked again, agreeing", ran, nil, with(map[string]int{wire.KindProfileResolved: 3, wire.KindPolicyDecision: 3, allow: 3}), ""},
		{"refused, its run closed by run.failed", nil, refused, with(map[string]int{wire.KindRunExit: 0, wire.KindRunFailed: 1}), ""},
		{"refused before a decision", nil, refused, map[string]int{wire.KindProfileResolved: 1}, ""},
		{"checks disagree", ran, nil, with(map[string]int{wire.KindPolicyDecision: 2, allow: 1, deny: 1}), "disagree"},
		{"checked 4 times", ran, nil, with(map[string]int{wire.KindPolicyDecision: 4, allow: 4}), "4 policy.decision records"},
		{"resolved 4 times", ran, nil, with(map[string]int{wire.KindProfileResolved: 4}), "4 profile.resolved records"},
		{"allowed, no end", nil, refused, with(map[string]int{wire.KindRunExit: 0}), "without an end"},
		{"decided twice", nil, refused, with(map[string]int{wire.KindRunDecision: 2, allowed: 2}), "2 run.decision records"},
		{"exit and run.failed", nil, refused, with(map[string]int{wire.KindRunFailed: 1}), "both an exit and a run.failed"},
		{"answered, exit not on record", ran, nil, with(map[string]int{wire.KindRunExit: 0, wire.KindRunFailed: 1}), "its exit is not on record"},
		{"no clear answer", nil, errors.New("nats: timeout"), map[string]int{}, "no answer and no clear error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			heard := []outcome{{id: "req-x", res: tc.res, err: tc.err}, {id: "req-ok", res: ran}}
			problems, tally := books(heard, map[string]map[string]int{"req-x": tc.r, "req-ok": good})
			switch {
			case tc.want == "" && len(problems) != 0:
				t.Errorf("problems %q, want none", problems)
			case tc.want != "" && (len(problems) != 1 || !strings.Contains(problems[0], tc.want)):
				t.Errorf("problems %q, want one saying %q", problems, tc.want)
			}
			if !strings.Contains(tally, "2 runs") {
				t.Errorf("tally %q", tally)
			}
		})
	}
}
