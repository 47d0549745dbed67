//go:build linux

package chaos

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/wire"
	"github.com/moatsec/moat/test/testbin"
)

// export reads every stored event offline: `auditd export --dir`, with
// auditd stopped.
func (s *stack) export() []wire.AuditEvent {
	s.t.Helper()
	out, err := s.cmd("auditd", "export", "--dir", s.home.AuditDir()).Output()
	if err != nil {
		s.t.Fatalf("auditd export: %v", err)
	}
	var evs []wire.AuditEvent
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev wire.AuditEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			s.t.Fatalf("auditd export: line %q: %v", sc.Text(), err)
		}
		evs = append(evs, ev)
	}
	// The query tool must agree with the export: the baseline's events.
	out, err = s.cmd("auditd", "query", "--dir", s.home.AuditDir(), "--kind", "bench.chaos", "--limit", "1000").Output()
	var page wire.AuditPage
	if jerr := json.Unmarshal(out, &page); jerr != nil || err != nil {
		s.t.Fatalf("auditd query --dir: %v, %v", err, jerr)
	}
	if len(page.Events) == 0 {
		s.t.Errorf("auditd query --dir --kind bench.chaos found nothing")
	}
	return evs
}

// record is what the store holds about one run, found by its marker's name.
type record struct {
	allow, deny, exits, failed int
	session, request           string
}

// account counts the store against what the callers were told and what the
// workspace holds, phase by phase, and logs the table.
func account(t *testing.T, l *load, evs []wire.AuditEvent, signalled []time.Time, reports map[string]*wire.AuditVerifyReport) {
	t.Helper()
	f := &failures{t: t, n: map[string]int{}}
	defer f.summary()
	phaseOf := map[string]int{}
	for p, s := range l.sessions {
		phaseOf[s] = p
	}
	stored := map[string]int{}
	runs := map[string]*record{}    // by token
	checks := map[string][]string{} // request id → verdicts of policy.decision
	kinds := map[string]int{}
	for _, ev := range evs {
		stored[ev.ID]++
		kinds[ev.Kind]++
		switch ev.Kind {
		case wire.KindRunDecision, wire.KindRunExit, wire.KindRunFailed:
			tok := l.tokenOf(ev.Argv)
			if tok == "" {
				continue
			}
			r := runs[tok]
			if r == nil {
				r = &record{session: ev.SessionID, request: ev.RequestID}
				runs[tok] = r
			}
			switch {
			case ev.Kind == wire.KindRunDecision && ev.Verdict == wire.VerdictAllow:
				r.allow++
			case ev.Kind == wire.KindRunDecision:
				r.deny++
			case ev.Kind == wire.KindRunExit:
				r.exits++
			default:
				r.failed++
			}
		case wire.KindPolicyDecision:
			checks[ev.RequestID] = append(checks[ev.RequestID], ev.Verdict)
		}
	}
	for id, n := range stored {
		if n > 1 {
			f.add("stored twice", "event %s stored %d times", id, n)
		}
	}
	lostAcked := make([]int, len(l.sessions))
	for id, p := range l.acked {
		if stored[id] != 1 {
			lostAcked[p]++
			f.add("acked not stored once", "phase %d: acked event %s stored %d times, want once", p, id, stored[id])
		}
	}
	if kinds[wire.KindAuditGap] != 0 {
		f.add("gap", "%d %s events: a gap was reported though no publisher lost anything acked", kinds[wire.KindAuditGap], wire.KindAuditGap)
	}

	// No run is left open (allowed, no exit on record): one whose sandboxd
	// was SIGKILLed is closed with a run.failed by another copy.
	entries, err := os.ReadDir(l.markers)
	if err != nil {
		t.Fatal(err)
	}
	marked := map[string]bool{}
	for _, e := range entries {
		marked[e.Name()] = true
		r := runs[e.Name()]
		switch {
		case r == nil || r.allow == 0:
			f.add("marker without allow", "marker %s exists without an allow decision on record", e.Name())
		case r.allow != 1 || r.exits+r.failed != 1:
			f.add("started run without records", "run %s (phase %d) started: %d allow decisions, %d exits, %d run.failed on record, want 1 and 1",
				e.Name(), phaseOf[r.session], r.allow, r.exits, r.failed)
		}
	}
	for tok, r := range runs {
		if r.allow+r.deny > 1 || r.exits+r.failed > 1 {
			f.add("recorded twice", "run %s (phase %d): %d decisions, %d ends on record, want at most one each",
				tok, phaseOf[r.session], r.allow+r.deny, r.exits+r.failed)
		}
	}
	open := make([]int, len(l.sessions))
	for tok, r := range runs {
		if r.allow == 0 || r.exits+r.failed > 0 {
			continue
		}
		p := phaseOf[r.session]
		open[p]++
		f.add("run left open", "run %s (phase %d, %s): allowed, marker %v, no exit or run.failed on record", tok, p, faults[p], marked[tok])
	}
	for name, rep := range reports {
		if rep.Missing != 0 || rep.Problem != nil || rep.OpenRuns != 0 {
			f.add("verify", "%s: ok %v, %d records, %d open runs %v, %d missing, problem %+v",
				name, rep.OK, rep.Records, rep.OpenRuns, rep.OpenRunIDs, rep.Missing, rep.Problem)
		}
	}

	tab := map[int]map[string]map[string]int{} // phase → via → class → n
	for _, c := range l.calls {
		if tab[c.phase] == nil {
			tab[c.phase] = map[string]map[string]int{}
		}
		if tab[c.phase][c.via] == nil {
			tab[c.phase][c.via] = map[string]int{}
		}
		tab[c.phase][c.via][c.class]++
		if c.via != "check" && !c.allow && marked[c.token] {
			// Told it failed, yet it ran (its records are checked above).
			tab[c.phase][c.via]["of which ran"]++
		}
		switch {
		case !c.clear:
			f.add("no clear answer", "phase %d %s %s: no clear answer: %s %s", c.phase, c.via, c.token, c.class, testbin.Tail(c.msg, 300))
		case c.via != "check" && (c.allow || strings.HasPrefix(c.class, wire.VerdictDeny)) && runs[c.token] == nil:
			f.add("decision not on record", "phase %d %s %s: answered %s, no run.decision on record", c.phase, c.via, c.token, c.class)
		case c.exit0 && !marked[c.token]:
			f.add("exit 0 without marker", "phase %d %s %s: answered exit 0 but left no marker", c.phase, c.via, c.token)
		case faults[c.phase].sig == syscall.SIGTERM && c.began.Before(signalled[c.phase]) && c.ended.After(signalled[c.phase]) &&
			!c.exit0 && !(c.via == "check" && c.allow) && !(c.via != "check" && !marked[c.token] && (runs[c.token] == nil || runs[c.token].allow == 0)):
			// In flight at a SIGTERM: answered with the command's end, or
			// told clearly that nothing ran (and nothing did).
			f.add("in flight at SIGTERM", "phase %d (%s) %s %s: in flight at the SIGTERM, ended %s: %s", c.phase, faults[c.phase],
				c.via, c.token, c.class, testbin.Tail(c.msg, 300))
		case c.via == "check" && c.allow && !slices.Contains(checks[c.token], wire.VerdictAllow):
			f.add("allow not on record", "phase %d: check %s answered allow with no allow decision on record (%v)", c.phase, c.token, checks[c.token])
		}
	}
	// One message of each kind of error, so the table's codes can be read.
	sample := map[string]string{}
	for _, c := range l.calls {
		key := fmt.Sprintf("phase %d %s %s", c.phase, c.via, c.class)
		if c.msg != "" && sample[key] == "" {
			sample[key] = strings.TrimSpace(testbin.Tail(c.msg, 200))
			t.Logf("%s: %s", key, sample[key])
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-3s %-22s %-9s %-6s %s\n", "#", "fault", "caller", "calls", "answers")
	for p, f := range faults {
		for _, via := range []string{"run", "moat-run", "check"} {
			ran := tab[p][via]["of which ran"]
			delete(tab[p][via], "of which ran")
			line := classes(tab[p][via])
			if ran > 0 {
				line += fmt.Sprintf(" (%d of the errors ran all the same)", ran)
			}
			fmt.Fprintf(&b, "%-3d %-22s %-9s %-6d %s\n", p, f, via, sum(tab[p][via]), line)
		}
		acked := 0
		for _, q := range l.acked {
			if q == p {
				acked++
			}
		}
		fmt.Fprintf(&b, "%-3d %-22s %-9s %-6d acked %d (%d not stored once), not acked %d; runs left open %d\n",
			p, f, "event", acked+l.unacked[p], acked, lostAcked[p], l.unacked[p], open[p])
	}
	fmt.Fprintf(&b, "markers %d; events stored %d (%d run.decision, %d run.exit, %d run.failed, %d policy.decision, %d bench.chaos)",
		len(marked), len(evs), kinds[wire.KindRunDecision], kinds[wire.KindRunExit], kinds[wire.KindRunFailed], kinds[wire.KindPolicyDecision], kinds["bench.chaos"])
	t.Log(b.String())
}

// tokenOf finds a run's marker name in its argv, or "".
func (l *load) tokenOf(argv []string) string {
	if len(argv) == 2 && argv[0] == "touch" && filepath.Dir(argv[1]) == l.markers {
		return filepath.Base(argv[1])
	}
	return ""
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// classes prints "exit 0 ×290, error 503 ×10", the most frequent first.
func classes(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// failures reports the first few of each kind of failure and counts the
// rest, so a broken promise does not drown the log.
type failures struct {
	t *testing.T
	n map[string]int
}

func (f *failures) add(kind, format string, args ...any) {
	f.t.Helper()
	if f.n[kind]++; f.n[kind] <= 10 {
		f.t.Errorf(format, args...)
	}
}

func (f *failures) summary() {
	for kind, n := range f.n {
		if n > 10 {
			f.t.Errorf("%s: %d in all (10 shown)", kind, n)
		}
	}
}
