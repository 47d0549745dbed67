package auditd

import (
	"crypto/ed25519"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/audit"
	"github.com/moatsec/moat/pkg/audit/store"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// fakeMsg is a delivered event whose ack records the block it went in.
type fakeMsg struct {
	jetstream.Msg // the methods the drain does not call
	data          []byte
	acked         func()
}

func (m *fakeMsg) Data() []byte                              { return m.data }
func (m *fakeMsg) Headers() nats.Header                      { return nats.Header{} }
func (m *fakeMsg) Subject() string                           { return "moat.audit.evt.test" }
func (m *fakeMsg) Metadata() (*jetstream.MsgMetadata, error) { return nil, nats.ErrBadSubject }
func (m *fakeMsg) Ack() error                                { m.acked(); return nil }

// blockRig feeds a drain's gather by hand and tells which block each
// message was stored in.
type blockRig struct {
	d      *Daemon
	ch     chan jetstream.Msg
	mu     sync.Mutex
	blocks []uint64 // per message acked: the block (d.begun) it went in
	done   chan bool
}

func newBlockRig(t *testing.T, linger time.Duration) *blockRig {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	st, err := store.Open(store.Options{Dir: t.TempDir(), SigningKey: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	d := &Daemon{cfg: Config{Store: st, Sanitizer: audit.NewSanitizer([]byte("k")), Batch: 1024, Linger: linger},
		flush: make(chan struct{}, 1), stopped: make(chan error, 1)}
	d.commits.ch = make(chan struct{})
	r := &blockRig{d: d, ch: make(chan jetstream.Msg, 4096), done: make(chan bool, 1)}
	s := &drainState{b: block{timer: time.NewTimer(time.Hour), quiet: time.NewTimer(time.Hour)}, linger: linger,
		done: make(chan struct{})} // never stopping
	go func() { r.done <- d.gather(s, r.ch, nil) }()
	t.Cleanup(func() {
		close(r.ch)
		if !<-r.done {
			t.Error("the store failed")
		}
	})
	return r
}

// send delivers n events at once.
func (r *blockRig) send(t *testing.T, n int) {
	for range n {
		body, err := wire.Encode(wire.Msgpack, &wire.AuditEvent{ID: wire.NewID(), Kind: wire.KindRunExit})
		if err != nil {
			t.Fatal(err)
		}
		r.ch <- &fakeMsg{data: body, acked: func() {
			r.mu.Lock()
			r.blocks = append(r.blocks, r.d.begun.Load())
			r.mu.Unlock()
		}}
	}
}

// stored reports how many messages were stored, in how many blocks.
func (r *blockRig) stored() (msgs, blocks int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[uint64]bool{}
	for _, b := range r.blocks {
		seen[b] = true
	}
	return len(r.blocks), len(seen)
}

// waitStored waits up to 10 s for n messages stored.
func (r *blockRig) waitStored(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if got, _ := r.stored(); got >= n {
			return
		}
		if time.Now().After(deadline) {
			got, _ := r.stored()
			t.Fatalf("%d of %d messages stored", got, n)
		}
	}
}

// TestBlockRules: below FullBlock messages wait for their linger (here an
// hour: nothing is stored); a burst of FullBlock or more goes once quiet,
// in one block; a steady stream that is never quiet still goes at its
// linger, not only when it stops.
func TestBlockRules(t *testing.T) {
	t.Run("below FullBlock it lingers", func(t *testing.T) {
		r := newBlockRig(t, time.Hour)
		r.send(t, FullBlock-1)
		time.Sleep(50 * Quiet)
		if n, _ := r.stored(); n != 0 {
			t.Fatalf("%d messages stored before their linger", n)
		}
	})
	t.Run("a burst goes once quiet", func(t *testing.T) {
		r := newBlockRig(t, time.Hour)
		r.send(t, 3*FullBlock)
		r.waitStored(t, 3*FullBlock)
		if _, blocks := r.stored(); blocks != 1 {
			t.Fatalf("a burst of %d stored in %d blocks, want 1", 3*FullBlock, blocks)
		}
	})
	t.Run("a steady stream goes at its linger", func(t *testing.T) {
		r := newBlockRig(t, 100*time.Millisecond)
		stop := time.Now().Add(time.Second)
		for time.Now().Before(stop) {
			r.send(t, 1)
			time.Sleep(Quiet / 5)
		}
		if n, blocks := r.stored(); blocks < 3 {
			t.Fatalf("a steady stream of a second stored %d messages in %d blocks by its end, want a block a linger (100 ms)", n, blocks)
		}
	})
}
