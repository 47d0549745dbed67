package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/moatsec/moat/pkg/wire"
)

// DamageError is damage found at open that only a person may repair: the
// store does not open for writing over it.
type DamageError struct {
	Dir     string
	Segment string
	Offset  int64
	Reason  string
}

func (e *DamageError) Error() string {
	return fmt.Sprintf("audit store damaged: %s offset %d: %s; nothing was cut or moved aside. "+
		"Run `auditd verify --dir %s` to see the first bad record, keep a copy of the directory, "+
		"and restore the segment from a backup (auditd serves queries read-only until then)",
		e.Segment, e.Offset, e.Reason, e.Dir)
}

// Damage names the first bad spot a read-only store skipped (nil: none).
func (s *Store) Damage() *DamageError {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.damage
}

func (s *Store) noteDamage(seg string, fe *frameError) {
	if s.damage == nil {
		s.damage = &DamageError{Dir: s.opts.Dir, Segment: seg, Offset: fe.off, Reason: fe.msg}
	}
}

// cutTail keeps the bytes past good in Dir/broken, truncates the segment
// there, and returns the event that puts the cut on record. Only an
// incomplete final frame comes here: Append returns (and auditd acks) only
// after a whole write is fsynced, so none of its records was acked and
// JetStream delivers them again.
func (s *Store) cutTail(path string, good int64) (*wire.AuditEvent, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	tail := data[good:]
	broken := filepath.Join(s.opts.Dir, "broken")
	if err := os.MkdirAll(broken, 0o700); err != nil {
		return nil, err
	}
	aside := filepath.Join(broken, fmt.Sprintf("%s.%d.broken", filepath.Base(path), s.opts.Now().UnixNano()))
	if err := os.WriteFile(aside, tail, 0o600); err != nil {
		return nil, err
	}
	syncDir(broken)
	if err := os.Truncate(path, good); err != nil {
		return nil, err
	}
	s.cut = append(s.cut, aside)
	sum := sha256.Sum256(tail)
	return &wire.AuditEvent{ID: wire.NewID(), TS: time.Now().UTC(), Source: "auditd", Kind: wire.KindAuditTailCut,
		Detail: map[string]any{"segment": filepath.Base(path), "offset": good, "bytes": len(tail),
			"sha256": hex.EncodeToString(sum[:]), "kept": filepath.Join("broken", filepath.Base(aside)),
			"reason": "an incomplete final frame: a write that never finished, so none of its records was acked"}}, nil
}

// maxTailScan bounds the CRC work spent looking for a valid frame past a
// bad one; past it the store assumes there is one (fail closed: damage).
const maxTailScan = 256 << 20

// validFrameIn reports whether a whole, CRC-valid block or checkpoint frame
// starts anywhere in [from, size): then what looked like a torn final frame
// is a damaged length in the middle, and cutting there would delete acked
// records.
func validFrameIn(r io.ReaderAt, from, size int64) bool {
	if size-from > maxFramePayload+frameOverhead {
		return true // no single write is that long: not a torn tail
	}
	buf := make([]byte, size-from)
	if _, err := r.ReadAt(buf, from); err != nil {
		return true
	}
	budget := int64(maxTailScan)
	for i := 0; i+frameOverhead <= len(buf); i++ {
		typ := buf[i]
		if typ != frameBlock && typ != frameCheckpoint && typ != frameHeader {
			continue
		}
		n := int64(binary.BigEndian.Uint32(buf[i+1 : i+5]))
		if int64(i)+frameOverhead+n > int64(len(buf)) {
			continue
		}
		if budget -= n; budget < 0 {
			return true
		}
		payload := buf[i+frameOverhead : int64(i)+frameOverhead+n]
		crc := crc32.Update(crc32.Checksum([]byte{typ}, castagnoli), castagnoli, payload)
		if crc == binary.BigEndian.Uint32(buf[i+5:i+9]) {
			return true
		}
	}
	return false
}

// Cut lists the torn tails cut off at open (kept aside).
func (s *Store) Cut() []string { return s.cut }
