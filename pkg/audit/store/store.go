package store

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/moatsec/moat/pkg/wire"
	"github.com/vmihailenco/msgpack/v5"
)

// Options configure a Store.
type Options struct {
	Dir                string
	SigningKey         ed25519.PrivateKey // checkpoints; nil: none
	SegmentBytes       int64              // rotate past this (default 64 MiB)
	SegmentAge         time.Duration      // rotate past this age (default 1 h)
	RetainBytes        int64              // delete the oldest segments past this total (0: keep all)
	RetainAge          time.Duration      // delete segments older than this (0: keep all)
	CheckpointEvery    int                // records between checkpoints (default 1000)
	CheckpointInterval time.Duration      // time between checkpoints (default 10 s)
	OnCheckpoint       func(Checkpoint)   // told of each checkpoint written
	GapWait            time.Duration      // how long a seq is missing before audit.gap (default DefaultGapWait)
	// Anchor is the latest checkpoint kept outside the store (its
	// signature checked by the caller); nil: none yet. A store that does
	// not reach it does not open (an *AnchorError) and is left unchanged.
	Anchor *Checkpoint
	Now    func() time.Time
}

// Store is moat's audit store: segments of CRC32C-framed, zstd-compressed
// blocks of hash-chained records, with Ed25519-signed checkpoints, an index
// per segment, rotation and retention.
//
// Invariants: one goroutine at a time appends (Append holds the lock); a
// block is fsynced before Append returns, so a caller acks upstream only
// what is durable; an event id is stored at most once; records' seqs run
// 1, 2, 3… without gaps across segments.
type Store struct {
	mu       sync.RWMutex
	opts     Options
	seg      *os.File
	segName  string
	segSize  int64
	segAt    time.Time
	seq      uint64
	head     []byte                 // hash of the last record
	ids      map[string]struct{}    // stored event ids (de-duplication)
	sources  map[string]*source     // source/instance → seqs seen (gaps.go)
	index    map[string][]IndexItem // segment → its records, in order
	order    []string               // segments, oldest first
	since    int                    // records since the last checkpoint
	ckptAt   time.Time
	jsonLen  int64 // the same records as JSON lines, for the compression ratio
	cut      []string
	broken   error
	readOnly bool
	damage   *DamageError // read-only: the first bad spot skipped
}

// jsonSample is one record in how many whose JSON size is measured.
const jsonSample = 8

// IndexItem locates one record and what queries filter on.
type IndexItem struct {
	Seq     uint64 `msgpack:"q"`
	TS      int64  `msgpack:"t"`
	Offset  int64  `msgpack:"o"` // the block frame
	ID      string `msgpack:"i"`
	Kind    string `msgpack:"k"`
	Source  string `msgpack:"s"`
	Session string `msgpack:"ss"`
	Request string `msgpack:"r"`
	Verdict string `msgpack:"v"`
	Profile string `msgpack:"p"`
	JSONLen int32  `msgpack:"j"`
}

func (s *Store) remember(seg string, off int64, seq uint64, ev *wire.AuditEvent) {
	s.ids[ev.ID] = struct{}{}
	if ev.Kind == wire.KindAuditGap {
		s.reported(ev)
	} else {
		s.see(ev)
	}
	s.index1(seg, off, seq, ev)
}

// index1 adds one stored event to the index.
func (s *Store) index1(seg string, off int64, seq uint64, ev *wire.AuditEvent) {
	// The JSON-lines size (for the compression ratio) is measured on one
	// record in jsonSample and extrapolated: marshalling every record would
	// cost a fifth of ingest.
	var jl int32
	if seq%jsonSample == 0 {
		j, _ := json.Marshal(ev)
		jl = int32(len(j)+1) * jsonSample
	}
	s.jsonLen += int64(jl)
	s.index[seg] = append(s.index[seg], IndexItem{Seq: seq, TS: ev.TS.UnixNano(), Offset: off, ID: ev.ID, Kind: ev.Kind,
		Source: ev.Source, Session: ev.SessionID, Request: ev.RequestID, Verdict: ev.Verdict, Profile: ev.Profile, JSONLen: jl})
}

func (s *Store) reopen(name string) error {
	f, err := os.OpenFile(filepath.Join(s.opts.Dir, name), os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	s.seg, s.segName, s.segSize = f, name, fi.Size()
	if s.segSize == 0 { // cut down to nothing: start it again
		return s.writeHeader()
	}
	return nil
}

// rotate seals the current segment and starts the next.
func (s *Store) rotate() error {
	if s.seg != nil {
		if err := s.seg.Close(); err != nil {
			return err
		}
	}
	n := len(s.order) + 1
	if len(s.order) > 0 {
		fmt.Sscanf(s.order[len(s.order)-1], "seg-%d.log", &n)
		n++
	}
	name := fmt.Sprintf("seg-%08d.log", n)
	f, err := os.OpenFile(filepath.Join(s.opts.Dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("audit store: new segment: %w", err)
	}
	s.seg, s.segName, s.segSize, s.segAt = f, name, 0, s.opts.Now()
	s.order = append(s.order, name)
	if err := s.writeHeader(); err != nil {
		return err
	}
	syncDir(s.opts.Dir)
	s.retain()
	return nil
}

func (s *Store) writeHeader() error {
	payload, _ := msgpack.Marshal(&segmentHeader{FirstSeq: s.seq + 1, PrevHash: s.head, Created: s.opts.Now().UnixNano()})
	return s.write(appendFrame(nil, frameHeader, payload))
}

func (s *Store) write(buf []byte) error {
	if _, err := s.seg.Write(buf); err != nil {
		return fmt.Errorf("audit store: write %s: %w", s.segName, err)
	}
	s.segSize += int64(len(buf))
	return nil
}

// retain deletes the oldest sealed segments past the retention limits.
func (s *Store) retain() {
	if s.opts.RetainBytes <= 0 && s.opts.RetainAge <= 0 {
		return
	}
	for len(s.order) > 1 {
		oldest := filepath.Join(s.opts.Dir, s.order[0])
		fi, err := os.Stat(oldest)
		if err != nil {
			return
		}
		total := s.diskBytes()
		if !(s.opts.RetainBytes > 0 && total > s.opts.RetainBytes) && !(s.opts.RetainAge > 0 && s.opts.Now().Sub(fi.ModTime()) > s.opts.RetainAge) {
			return
		}
		os.Remove(oldest)
		for _, it := range s.index[s.order[0]] {
			delete(s.ids, it.ID)
			s.jsonLen -= int64(it.JSONLen)
		}
		delete(s.index, s.order[0])
		s.order = s.order[1:]
	}
}

// Append stores events (already sanitized), skipping ids already stored and
// recording a gap event when a source's seq skips. It returns once the block
// is fsynced: what Append returned for is durable.
func (s *Store) Append(evs []*wire.AuditEvent) (stored int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != nil {
		return 0, s.broken
	}
	// A failed append leaves the in-memory state ahead of the disk: the
	// store refuses further appends, and reopening rebuilds it from disk.
	defer func() {
		if err != nil {
			s.broken = fmt.Errorf("audit store failed earlier (%v): reopen it", err)
		}
	}()
	var fresh []*wire.AuditEvent
	for _, ev := range evs {
		if _, dup := s.ids[ev.ID]; dup || ev.ID == "" {
			continue
		}
		s.ids[ev.ID] = struct{}{}
		fresh = append(fresh, ev)
		s.see(ev)
	}
	fresh = append(fresh, s.gaps()...)
	if len(fresh) == 0 {
		return 0, nil
	}
	if s.segSize >= s.opts.SegmentBytes || s.opts.Now().Sub(s.segAt) >= s.opts.SegmentAge {
		if err := s.seal(); err != nil {
			return 0, err
		}
	}
	recs := make([]Record, len(fresh))
	seq, head := s.seq, s.head
	var evBuf bytes.Buffer
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(&evBuf)
	for i, ev := range fresh {
		start := evBuf.Len()
		if err := enc.Encode(ev); err != nil {
			return 0, err
		}
		b := evBuf.Bytes()[start:evBuf.Len():evBuf.Len()]
		seq++
		head = chain(head, seq, b)
		recs[i] = Record{Seq: seq, Hash: head, Event: b}
	}
	block, err := encodeBlock(recs)
	if err != nil {
		return 0, err
	}
	off := s.segSize
	buf := appendFrame(nil, frameBlock, block)
	s.since += len(recs)
	var ckpt *Checkpoint
	if s.opts.SigningKey != nil && (s.since >= s.opts.CheckpointEvery || s.opts.Now().Sub(s.ckptAt) >= s.opts.CheckpointInterval) {
		ckpt = s.checkpoint(seq, head)
		payload, _ := msgpack.Marshal(ckpt)
		buf = appendFrame(buf, frameCheckpoint, payload)
	}
	if err := s.write(buf); err != nil {
		return 0, err
	}
	if err := s.seg.Sync(); err != nil {
		return 0, fmt.Errorf("audit store: fsync %s: %w", s.segName, err)
	}
	s.seq, s.head = seq, head
	for i, ev := range fresh {
		s.index1(s.segName, off, recs[i].Seq, ev)
	}
	if ckpt != nil {
		s.since, s.ckptAt = 0, s.opts.Now()
		if s.opts.OnCheckpoint != nil {
			s.opts.OnCheckpoint(*ckpt)
		}
	}
	return len(fresh), nil
}

func (s *Store) checkpoint(size uint64, root []byte) *Checkpoint {
	c := &Checkpoint{Origin: CheckpointOrigin, Size: size, Root: root, TS: s.opts.Now().UnixNano()}
	c.Sig = ed25519.Sign(s.opts.SigningKey, c.signed())
	return c
}

// seal ends the current segment: its index is written beside it.
func (s *Store) seal() error {
	if err := s.writeIndex(s.segName); err != nil {
		return err
	}
	return s.rotate()
}

func (s *Store) writeIndex(seg string) error {
	data, err := msgpack.Marshal(s.index[seg])
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.opts.Dir, strings.TrimSuffix(seg, ".log")+".idx"), data, 0o600)
}

// Close signs a last checkpoint over records not yet covered by one (so a
// clean stop leaves the whole tail anchored), writes the current segment's
// index and closes it.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seg == nil {
		return nil
	}
	if s.broken == nil && s.opts.SigningKey != nil && s.since > 0 {
		ckpt := s.checkpoint(s.seq, s.head)
		payload, _ := msgpack.Marshal(ckpt)
		if err := s.write(appendFrame(nil, frameCheckpoint, payload)); err == nil && s.seg.Sync() == nil {
			s.since = 0
			if s.opts.OnCheckpoint != nil {
				s.opts.OnCheckpoint(*ckpt)
			}
		}
	}
	s.writeIndex(s.segName)
	err := s.seg.Close()
	s.seg = nil
	return err
}

// Verify checks the whole store (see the package-level Verify) while no
// append runs, so a block being written is not taken for a torn one.
func (s *Store) Verify(pub ed25519.PublicKey, anchor *Checkpoint) (*wire.AuditVerifyReport, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return Verify(s.opts.Dir, pub, anchor)
}

// Stats reports the store's size and how well it compresses.
func (s *Store) Stats() wire.AuditStoreStats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := uint64(0)
	for _, items := range s.index {
		n += uint64(len(items))
	}
	st := wire.AuditStoreStats{Records: n, Segments: len(s.order), DiskBytes: s.diskBytes(), JSONBytes: s.jsonLen, LastSeq: s.seq,
		Head: fmt.Sprintf("%x", s.head), CutOnStart: len(s.cut)}
	if st.DiskBytes > 0 {
		st.Ratio = float64(st.JSONBytes) / float64(st.DiskBytes)
	}
	return st
}

func (s *Store) diskBytes() int64 {
	var total int64
	for _, name := range s.order {
		if fi, err := os.Stat(filepath.Join(s.opts.Dir, name)); err == nil {
			total += fi.Size()
		}
	}
	return total
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
