package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/wire"
)

// clock is a settable Now for a store.
type clock struct{ t time.Time }

func (c *clock) now() time.Time         { return c.t }
func (c *clock) add(d time.Duration)    { c.t = c.t.Add(d) }
func withClock(c *clock) func(*Options) { return func(o *Options) { o.Now = c.now } }

// seqs are events of one publishing instance with the seqs from..to.
func seqs(inst string, from, to uint64) []*wire.AuditEvent {
	var out []*wire.AuditEvent
	for q := from; q <= to; q++ {
		out = append(out, &wire.AuditEvent{ID: fmt.Sprintf("%s-%08d", inst, q), TS: time.Unix(1700000000, 0).UTC(),
			Source: "policyd", Instance: inst, Seq: q, Kind: "policy.decision"})
	}
	return out
}

func gapEvents(t *testing.T, s *Store) (n int, missing uint64, ranges [][2]uint64) {
	t.Helper()
	r, err := s.Query(wire.AuditQuery{Kind: "audit.gap", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range r.Events {
		from, to := num(e.Event.Detail["missing_from"]), num(e.Event.Detail["missing_to"])
		missing += to - from + 1
		ranges = append(ranges, [2]uint64{from, to})
	}
	return len(r.Events), missing, ranges
}

// TestNoGapForARedelivery reproduces issue 16's false, permanent
// audit.gap: auditd crashed holding 1,024 unacked events (seqs 501–1,524);
// after a restart JetStream delivers everything newer first and the old
// batch only once the 30 s ack wait has passed, by when the publisher is
// more than GapHorizon seqs further on.
func TestNoGapForARedelivery(t *testing.T) {
	c := &clock{t: time.Unix(1800000000, 0)}
	s := open(t, t.TempDir(), withClock(c))
	defer s.Close()
	s.Append(seqs("a", 1, 500))
	c.add(2 * time.Second)
	for q := uint64(1525); q <= 8000; q += 500 { // newer events, past the horizon
		s.Append(seqs("a", q, q+499))
		c.add(time.Second)
	}
	c.add(30 * time.Second) // the ack wait: the old batch comes again
	s.Append(seqs("a", 501, 1524))
	c.add(10 * time.Minute)
	s.Append(seqs("a", 8025, 8030))
	if n, missing, r := gapEvents(t, s); n != 0 {
		t.Fatalf("a redelivered batch was reported missing: %d gap events, %d seqs %v", n, missing, r)
	}
}

// TestGapsPastManyHoles: a jump of 200,000 seqs is reported whole (it
// stopped at 65,536 holes), and a real gap is reported once it has been
// missing past both the horizon and the redelivery wait.
func TestGapsPastManyHoles(t *testing.T) {
	c := &clock{t: time.Unix(1800000000, 0)}
	s := open(t, t.TempDir(), withClock(c))
	defer s.Close()
	s.Append(seqs("b", 1, 1))
	s.Append(seqs("b", 200002, 200002)) // 2..200001 never come
	c.add(10 * time.Minute)
	s.Append(seqs("b", 200003, 200003))
	c.add(10 * time.Minute)
	s.Append(seqs("b", 200004+GapHorizon, 200004+GapHorizon)) // moves the horizon past them all
	n, missing, r := gapEvents(t, s)
	if missing != 200000 || n == 0 || r[0][0] != 2 || r[len(r)-1][1] != 200001 {
		t.Fatalf("gap events report %d seqs missing in %d events %v, want 2..200001", missing, n, r)
	}
}

func TestFillSplitsRuns(t *testing.T) {
	src := &source{holes: []span{{from: 10, to: 20}, {from: 30, to: 40}}}
	for _, f := range [][2]uint64{{15, 15}, {10, 10}, {20, 31}, {35, 50}, {5, 5}} {
		src.fill(f[0], f[1])
	}
	var got [][2]uint64
	for _, h := range src.holes {
		got = append(got, [2]uint64{h.from, h.to})
	}
	want := [][2]uint64{{11, 14}, {16, 19}, {32, 34}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("holes %v, want %v", got, want)
	}
}
