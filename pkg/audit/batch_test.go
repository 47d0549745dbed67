package audit_test

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/audit"
	"github.com/moatsec/moat/pkg/bus"
	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// streamed is what MOAT_AUDIT holds: each message, and every event id it
// carries (alone or in a batch) with how often.
type streamed struct {
	msgs    []*jetstream.RawStreamMsg
	batches int // messages that are batches
	largest int // events in the largest batch
	ids     map[string]int
}

func readStream(t *testing.T, s *bustest.Stack) streamed {
	t.Helper()
	js, _ := jetstream.New(s.Conn(t, home.RoleAdmin))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, wire.AuditStream)
	if err != nil {
		t.Fatal(err)
	}
	out := streamed{ids: map[string]int{}}
	state := st.CachedInfo().State
	for seq := state.FirstSeq; seq <= state.LastSeq && state.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		out.msgs = append(out.msgs, m)
		bodies := [][]byte{m.Data}
		if m.Header.Get(wire.HeaderKind) == wire.KindAuditBatch {
			if len(m.Data) > audit.MaxBatchBytes+3 {
				t.Errorf("batch %d is %d bytes, over the bound %d", seq, len(m.Data), audit.MaxBatchBytes)
			}
			if bodies, err = audit.SplitBatch(m.Data); err != nil {
				t.Fatalf("batch %d: %v", seq, err)
			}
			if n, _ := strconv.Atoi(m.Header.Get(wire.HeaderAuditBatch)); n != len(bodies) {
				t.Errorf("batch %d: header says %d events, body holds %d", seq, n, len(bodies))
			}
			if !strings.HasSuffix(m.Subject, "."+wire.KindAuditBatch) {
				t.Errorf("batch %d on %s", seq, m.Subject)
			}
			out.batches++
			out.largest = max(out.largest, len(bodies))
		}
		for _, b := range bodies {
			var ev wire.AuditEvent
			if err := wire.Decode(wire.Msgpack, b, &ev); err != nil {
				t.Fatalf("message %d: event: %v", seq, err)
			}
			out.ids[ev.ID]++
		}
	}
	return out
}

// publishAll publishes evs at once, each from its own goroutine, while
// MOAT_AUDIT is away for a moment (as during a leader election): the first
// event goes and waits, the next batches set off after Linger, and the
// rest gather behind them. It returns once all are acked.
func publishAll(t *testing.T, s *bustest.Stack, p *audit.Publisher, evs []*wire.AuditEvent) {
	t.Helper()
	admin, _ := jetstream.New(s.Conn(t, home.RoleAdmin))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := admin.DeleteStream(ctx, wire.AuditStream); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(evs))
	for _, ev := range evs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- p.Publish(context.Background(), ev)
		}()
	}
	time.Sleep(500 * time.Millisecond)
	if _, err := admin.CreateStream(ctx, bus.AuditStreamConfig(bus.DefaultAuditMaxBytes)); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
}

// TestPublishBatches: events published together go as batches, none over
// MaxBatchEvents or MaxBatchBytes, and every event is in the stream exactly
// once; a lone event still goes alone, on its kind's subject.
func TestPublishBatches(t *testing.T) {
	cases := []struct {
		name   string
		n      int
		argLen int // bytes of arguments in each event
		full   bool
	}{
		// 1,200 at once: at most 1 + 3 × 256 are out before the stream is
		// back, so the rest fill at least one batch to MaxBatchEvents.
		{"count bound", 1200, 0, true},
		// 28 KB each: the bytes bound closes batches at 9 events.
		{"bytes bound", 64, 28000, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := bustest.Start(t)
			p, err := audit.NewPublisher(s.Conn(t, home.RoleSandboxd), home.RoleSandboxd, "t")
			if err != nil {
				t.Fatal(err)
			}
			evs := make([]*wire.AuditEvent, c.n)
			for i := range evs {
				argv := []string{"echo", strconv.Itoa(i)}
				for n := 0; n < c.argLen; n += 4000 { // under MaxFieldBytes, so kept whole
					argv = append(argv, strings.Repeat(strconv.Itoa(i%10), 4000))
				}
				evs[i] = &wire.AuditEvent{Kind: wire.KindRunExit, Argv: argv}
			}
			publishAll(t, s, p, evs)
			got := readStream(t, s)
			for _, ev := range evs {
				if got.ids[ev.ID] != 1 {
					t.Fatalf("event %s is in the stream %d times", ev.ID, got.ids[ev.ID])
				}
			}
			if len(got.ids) != c.n {
				t.Fatalf("the stream holds %d events, want %d", len(got.ids), c.n)
			}
			if got.batches == 0 || len(got.msgs) >= c.n || p.Batches() != uint64(got.batches) {
				t.Fatalf("%d events in %d messages, %d of them batches (publisher counted %d): nothing was batched",
					c.n, len(got.msgs), got.batches, p.Batches())
			}
			if got.largest > audit.MaxBatchEvents || c.full && got.largest != audit.MaxBatchEvents {
				t.Fatalf("largest batch %d events; want %d at most (and reached: %v)", got.largest, audit.MaxBatchEvents, c.full)
			}
			if c.argLen > 0 && got.largest > audit.MaxBatchBytes/c.argLen {
				t.Fatalf("a batch of %d events of %d bytes each", got.largest, c.argLen)
			}

			// Nothing in flight: one event goes at once, alone, as ever.
			lone := &wire.AuditEvent{Kind: wire.KindRunExit}
			if err := p.Publish(context.Background(), lone); err != nil {
				t.Fatal(err)
			}
			after := readStream(t, s)
			last := after.msgs[len(after.msgs)-1]
			if last.Subject != wire.AuditSubject(home.RoleSandboxd, wire.KindRunExit) || last.Header.Get(wire.HeaderMsgID) != lone.ID {
				t.Fatalf("a lone event went on %s as %s", last.Subject, last.Header.Get(wire.HeaderMsgID))
			}
		})
	}
}

// TestSplitBatchBounds: a batch body is refused, before anything is
// allocated for it, when it is too big, declares more events or bytes than
// it holds or than a batch may, or is not an array; a good one splits
// into its events' bodies.
func TestSplitBatchBounds(t *testing.T) {
	ev := func(id string) []byte {
		b, err := wire.Encode(wire.Msgpack, &wire.AuditEvent{ID: id, Kind: "run.exit"})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := append([]byte{0x92}, append(ev("a"), ev("b")...)...)
	bodies, err := audit.SplitBatch(good)
	if err != nil || len(bodies) != 2 || !bytes.Equal(bodies[0], ev("a")) || !bytes.Equal(bodies[1], ev("b")) {
		t.Fatalf("split %d bodies, err %v", len(bodies), err)
	}
	tooMany := []byte{0xdc, 0x01, 0x01} // 257 nils
	tooMany = append(tooMany, bytes.Repeat([]byte{0xc0}, 257)...)
	huge := append([]byte{0x91, 0xc6, 0x00, 0x04, 0x00, 0x08}, make([]byte, 256<<10+8)...) // one bin of 256 KiB + 8
	for _, c := range []struct {
		name string
		body []byte
		want string
	}{
		{"empty", nil, ""},
		{"a map, not an array", []byte{0x80}, "not an array"},
		{"an empty array", []byte{0x90}, "0 events"},
		{"declares 2^31 events", []byte{0xdd, 0x80, 0, 0, 0, 0xc0}, "declares"},
		{"more events than a batch holds", tooMany, "257 events"},
		{"over the bytes bound", huge, "bytes; at most"},
		{"trailing bytes", append(append([]byte(nil), good...), 0xc0), "unexpected bytes"},
		{"an event cut short", good[:len(good)-3], ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := audit.SplitBatch(c.body)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("split into %d, err %v; want an error saying %q", len(got), err, c.want)
			}
		})
	}
}
