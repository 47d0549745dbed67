package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/moatsec/moat/pkg/wire"
)

// Open opens (or creates) the store in opts.Dir. Damage is never repaired
// by deletion: the one thing cut is an incomplete final frame on the last
// segment (a write that never finished, so none of its records was acked),
// kept in Dir/broken and put on record in the chain (an audit.tail_cut
// event, signed by the checkpoint that follows it). Any other damage stops
// the store from opening with a [*DamageError] naming the segment and the
// offset, since appending to a broken chain would hide it.
func Open(opts Options) (*Store, error) {
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = 64 << 20
	}
	if opts.SegmentAge <= 0 {
		opts.SegmentAge = time.Hour
	}
	if opts.CheckpointEvery <= 0 {
		opts.CheckpointEvery = 1000
	}
	if opts.CheckpointInterval <= 0 {
		opts.CheckpointInterval = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit store: %w", err)
	}
	s := &Store{opts: opts, ids: map[string]struct{}{}, sources: map[string]*source{}, index: map[string][]IndexItem{}, ckptAt: opts.Now()}
	names, err := segments(opts.Dir)
	if err != nil {
		return nil, err
	}
	var torn *tornTail
	for i, name := range names {
		t, err := s.load(name, i == len(names)-1)
		if err != nil {
			return nil, err
		}
		torn = t
	}
	// Nothing is changed before the store is known to reach its anchor.
	if err := s.checkAnchor(opts.Anchor); err != nil {
		return nil, err
	}
	var cuts []*wire.AuditEvent
	if torn != nil {
		cut, err := s.cutTail(torn.path, torn.good)
		if err != nil {
			return nil, err
		}
		cuts = append(cuts, cut)
	}
	if len(names) == 0 {
		if err := s.rotate(); err != nil {
			return nil, err
		}
	} else if err := s.reopen(names[len(names)-1]); err != nil {
		return nil, err
	}
	if len(cuts) > 0 {
		// The cut goes on record at once, and a checkpoint signs it.
		s.since = s.opts.CheckpointEvery
		if _, err := s.Append(cuts); err != nil {
			return nil, fmt.Errorf("record the torn tail cut at open: %w", err)
		}
	}
	return s, nil
}

// OpenReadOnly loads a store for queries and export without changing it.
// Damage does not stop it: every frame that can be read is served, a
// damaged one is skipped, and [Store.Damage] names the first bad spot.
func OpenReadOnly(dir string) (*Store, error) {
	s := &Store{opts: Options{Dir: dir, Now: time.Now}, ids: map[string]struct{}{}, sources: map[string]*source{},
		index: map[string][]IndexItem{}, readOnly: true, broken: errors.New("the store is open read-only")}
	names, err := segments(dir)
	if err != nil {
		return nil, err
	}
	for i, name := range names {
		if _, err := s.load(name, i == len(names)-1); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func segments(dir string) ([]string, error) {
	matches, err := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	if err != nil {
		return nil, err
	}
	sort.Strings(matches)
	out := make([]string, len(matches))
	for i, m := range matches {
		out[i] = filepath.Base(m)
	}
	return out, nil
}

// tornTail is an incomplete final frame found at load, to be cut at good.
type tornTail struct {
	path string
	good int64
}

// load reads a segment into memory (chain state, ids, index). On the last
// segment of a writable store, an incomplete final frame is returned, to be
// cut once the store is known to reach its anchor; read-only, damaged
// frames are skipped and noted.
func (s *Store) load(name string, last bool) (*tornTail, error) {
	path := filepath.Join(s.opts.Dir, name)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	s.order = append(s.order, name)
	good := int64(0)
	for from := int64(0); ; {
		err = readFramesFrom(f, from, fi.Size(), func(fr frame) error {
			if err := s.loadFrame(name, fr); err != nil {
				return &frameError{off: fr.offset, msg: err.Error(), next: fr.offset + frameOverhead + int64(len(fr.payload))}
			}
			good = fr.offset + frameOverhead + int64(len(fr.payload))
			return nil
		})
		if err == nil {
			return nil, nil
		}
		var fe *frameError
		if !errors.As(err, &fe) {
			return nil, fmt.Errorf("audit segment %s: %w", path, err)
		}
		if s.readOnly {
			s.noteDamage(name, fe)
			if fe.next == 0 {
				return nil, nil
			}
			from = fe.next
			continue
		}
		if last && fe.incomplete && fe.off == good && !validFrameIn(f, fe.off+1, fi.Size()) {
			return &tornTail{path: path, good: good}, nil
		}
		return nil, &DamageError{Dir: s.opts.Dir, Segment: name, Offset: fe.off, Reason: fe.msg}
	}
}

// loadFrame takes one good frame into memory.
func (s *Store) loadFrame(name string, fr frame) error {
	switch fr.typ {
	case frameHeader:
		var h segmentHeader
		if err := unmarshal(fr.payload, &h); err != nil {
			return fmt.Errorf("segment header: %w", err)
		}
		if s.seq == 0 && len(s.head) == 0 { // the oldest retained segment
			s.seq, s.head = h.FirstSeq-1, h.PrevHash
		}
		s.segAt = time.Unix(0, h.Created)
	case frameBlock:
		recs, err := decodeBlock(fr.payload)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if r.Seq != s.seq+1 && !(s.readOnly && r.Seq > s.seq) {
				return fmt.Errorf("record %d follows %d", r.Seq, s.seq)
			}
			s.seq, s.head = r.Seq, r.Hash
			var ev wire.AuditEvent
			if err := unmarshal(r.Event, &ev); err != nil {
				return fmt.Errorf("record %d: %w", r.Seq, err)
			}
			s.remember(name, fr.offset, r.Seq, &ev)
		}
		s.since += len(recs)
	case frameCheckpoint:
		s.since = 0
	}
	return nil
}

// remember takes a stored event into memory (at load).
