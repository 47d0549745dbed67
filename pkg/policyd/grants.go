package policyd

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// grants is policyd's view of the grants bucket (wire.GrantsBucket).
//
// Invariants:
//   - the bucket is the truth, shared by every policyd copy; the memory copy,
//     kept by one watcher goroutine (run, joined by stop), only says which
//     grants may cover a prompt, so a check that matches none reads memory only;
//   - a use is confirmed against the bucket: a counted grant is spent by a
//     compare-and-swap on its revision (so N uses are N across every copy),
//     any grant is read back first (so a revoke or an expiry holds at once);
//   - a grant never lifts a deny: only a prompt consults grants.
type grants struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	mu     sync.RWMutex
	kv     jetstream.KeyValue // nil until the bucket is open
	idx    *index             // the grants in memory
	loaded chan struct{}      // closed once the bucket's state is first in memory
	once   sync.Once
	cancel context.CancelFunc
	done   chan struct{}
	// rulesChanged, when set, is called by the watcher (holding no lock)
	// once the bucket is first in memory and whenever a rule grant comes or
	// goes: it keeps the grants rules file in step (grants_rules.go).
	rulesChanged func(list func() []wire.Grant)
}

// maxCAS bounds the compare-and-swap retries of one use under contention.
const maxCAS = 32

// startGrants opens the bucket and watches it until stop; a bucket that
// cannot be opened yet is retried every second (prompts ask meanwhile). It
// waits up to wait for the bucket's grants to be in memory, so a policyd
// that just started honours them from its first check.
func startGrants(nc *nats.Conn, wait time.Duration, logf func(msg string, args ...any), rulesChanged func(list func() []wire.Grant)) (*grants, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &grants{nc: nc, js: js, idx: newIndex(), cancel: cancel, done: make(chan struct{}),
		loaded: make(chan struct{}), rulesChanged: rulesChanged}
	go func() {
		defer close(g.done)
		for ctx.Err() == nil {
			err := g.watch(ctx)
			if err == errReconnected {
				continue
			}
			if err != nil && ctx.Err() == nil {
				logf("grants bucket unavailable; prompts ask until it is back", "bucket", wire.GrantsBucket, "err", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	select {
	case <-g.loaded:
	case <-time.After(wait):
		logf("grants not loaded yet; prompts ask until they are", "bucket", wire.GrantsBucket)
	}
	return g, nil
}

func (g *grants) stop() {
	g.cancel()
	<-g.done
}

// errReconnected ends a watch when the connection came back: a watcher's
// consumer may not have survived a busd restart, so the bucket is read anew.
var errReconnected = errors.New("reconnected")

// watch copies the bucket into memory, then follows it until the watcher
// ends or the connection reconnects.
func (g *grants) watch(ctx context.Context) error {
	reconnects := g.nc.Stats().Reconnects
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	octx, cancel := context.WithTimeout(ctx, 5*time.Second)
	kv, err := g.js.KeyValue(octx, wire.GrantsBucket)
	cancel()
	if err != nil {
		return fmt.Errorf("open key-value bucket %s (busd creates it): %w", wire.GrantsBucket, err)
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch key-value bucket %s: %w", wire.GrantsBucket, err)
	}
	defer w.Stop()
	fresh := newIndex()
	initial := true
	for {
		var e jetstream.KeyValueEntry
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if g.nc.Stats().Reconnects != reconnects {
				return errReconnected
			}
			continue
		case e, ok = <-w.Updates():
			if !ok {
				return errors.New("the watcher ended")
			}
		}
		if e == nil { // the bucket's current state is in: swap it in whole
			g.mu.Lock()
			g.kv, g.idx, initial = kv, fresh, false
			g.mu.Unlock()
			g.once.Do(func() { close(g.loaded) })
			g.ruleGrantsChanged()
			continue
		}
		if initial {
			apply(fresh, e)
			continue
		}
		g.mu.Lock()
		rule := apply(g.idx, e)
		g.mu.Unlock()
		if rule {
			g.ruleGrantsChanged()
		}
	}
}

func (g *grants) ruleGrantsChanged() {
	if g.rulesChanged != nil {
		g.rulesChanged(g.list)
	}
}

// apply puts one bucket entry into x: a grant stored, or a key gone. It
// reports whether a rule grant came or went.
func apply(x *index, e jetstream.KeyValueEntry) (rule bool) {
	if old := x.get(e.Key()); old != nil && old.Kind == wire.GrantRule {
		rule = true
	}
	if e.Operation() != jetstream.KeyValuePut {
		x.remove(e.Key())
		return rule
	}
	gr, err := decodeGrant(e)
	if err != nil {
		x.remove(e.Key())
		return rule // not a grant policyd wrote: it covers nothing
	}
	x.put(gr)
	return rule || gr.Kind == wire.GrantRule
}

func decodeGrant(e jetstream.KeyValueEntry) (*wire.Grant, error) {
	var gr wire.Grant
	if err := wire.Decode(wire.JSON, e.Value(), &gr); err != nil {
		return nil, err
	}
	if gr.ID != e.Key() {
		return nil, fmt.Errorf("grant %s stored under key %s", gr.ID, e.Key())
	}
	gr.Revision = e.Revision()
	return &gr, nil
}

// candidates are the grants in memory that cover the command now: the
// lookup every prompt makes. Uncounted grants come first (a use costs no write).
func (g *grants) candidates(workspace, profile, session string, argv []string, now time.Time) []wire.Grant {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := g.idx.covering(nil, workspace, profile, session, argv, now)
	if len(out) < 2 {
		return out
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i].Uses == 0) != (out[j].Uses == 0) {
			return out[i].Uses == 0
		}
		return out[i].At.Before(out[j].At)
	})
	return out
}

func (g *grants) bucket() (jetstream.KeyValue, error) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.kv == nil {
		return nil, wire.Errorf(wire.CodeUnavailable, "the grants bucket %s is not open yet: is busd's JetStream up? (moat status)", wire.GrantsBucket)
	}
	return g.kv, nil
}

// use spends one use of a grant that covers the command, confirmed in the
// bucket; nil when none does.
func (g *grants) use(ctx context.Context, workspace, profile, session string, argv []string) (*wire.Grant, error) {
	now := time.Now()
	cands := g.candidates(workspace, profile, session, argv, now)
	if len(cands) == 0 {
		return nil, nil
	}
	kv, err := g.bucket()
	if err != nil {
		return nil, err
	}
	for _, c := range cands {
		for range maxCAS {
			e, err := kv.Get(ctx, c.ID)
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				break // revoked, spent or expired meanwhile
			}
			if err != nil {
				return nil, fmt.Errorf("read grant %s: %w", c.ID, err)
			}
			gr, err := decodeGrant(e)
			if err != nil || !gr.Covers(workspace, profile, session, argv, time.Now()) {
				break
			}
			if gr.Uses == 0 {
				return gr, nil
			}
			gr.Uses--
			if gr.Uses == 0 {
				err = kv.Delete(ctx, gr.ID, jetstream.LastRevision(e.Revision()))
			} else {
				_, err = g.put(ctx, gr, e.Revision())
			}
			if err == nil {
				g.mu.Lock()
				if gr.Uses == 0 {
					g.idx.remove(gr.ID)
				}
				g.mu.Unlock()
				return gr, nil
			}
			if !isWrongRevision(err) {
				return nil, fmt.Errorf("spend a use of grant %s: %w", c.ID, err)
			}
			// Another copy spent a use first: read again.
		}
	}
	return nil, nil
}

// put stores gr at revision rev (0: a new key), with the bucket expiring it
// at its ExpiresAt.
func (g *grants) put(ctx context.Context, gr *wire.Grant, rev uint64) (uint64, error) {
	gr.Revision = 0
	body, err := wire.Encode(wire.JSON, gr)
	if err != nil {
		return 0, err
	}
	m := nats.NewMsg("$KV." + wire.GrantsBucket + "." + gr.ID)
	m.Data = body
	opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(rev)}
	if !gr.ExpiresAt.IsZero() {
		ttl := time.Until(gr.ExpiresAt)
		if ttl < time.Second {
			ttl = time.Second // the bucket's finest expiry; Covers is exact
		}
		opts = append(opts, jetstream.WithMsgTTL(ttl.Round(time.Second)+time.Second))
	}
	ack, err := g.js.PublishMsg(ctx, m, opts...)
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// create stores a new grant and puts it in memory at once (the watcher
// brings it to the other copies).
func (g *grants) create(ctx context.Context, gr *wire.Grant) error {
	if _, err := g.bucket(); err != nil {
		return err
	}
	rev, err := g.put(ctx, gr, 0)
	if err != nil {
		return wire.Errorf(wire.CodeUnavailable, "store the grant in %s: %v; answer once, or retry", wire.GrantsBucket, err)
	}
	gr.Revision = rev
	g.mu.Lock()
	c := *gr
	g.idx.put(&c)
	g.mu.Unlock()
	return nil
}

// revoke deletes a grant from the bucket and from memory.
func (g *grants) revoke(ctx context.Context, id string) (*wire.Grant, error) {
	kv, err := g.bucket()
	if err != nil {
		return nil, err
	}
	e, err := kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return nil, wire.Errorf(wire.CodeNotFound, "no grant %s: it was revoked, spent or expired (moat grants lists them)", id)
	}
	if err != nil {
		return nil, wire.Errorf(wire.CodeUnavailable, "read grant %s: %v", id, err)
	}
	gr, _ := decodeGrant(e)
	if err := kv.Delete(ctx, id); err != nil {
		return nil, wire.Errorf(wire.CodeUnavailable, "revoke grant %s: %v", id, err)
	}
	g.mu.Lock()
	g.idx.remove(id)
	g.mu.Unlock()
	return gr, nil
}

// list is every grant in force, oldest first.
func (g *grants) list() []wire.Grant {
	now := time.Now()
	g.mu.RLock()
	out := []wire.Grant{}
	for _, gr := range g.idx.all() {
		if gr.ExpiresAt.IsZero() || now.Before(gr.ExpiresAt) {
			out = append(out, *gr)
		}
	}
	g.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

func isWrongRevision(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) ||
		(errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence)
}
