package store

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/moatsec/moat/pkg/wire"
	"github.com/vmihailenco/msgpack/v5"
)

// Verify checks a store directory end to end: every frame's CRC, every
// record's place in the hash chain (a flipped byte, a removed or reordered
// record breaks it), the chain across segments, and every checkpoint's
// signature and agreement with the chain (pub nil skips signatures). It
// reports the first bad spot.
func Verify(dir string, pub ed25519.PublicKey) (*wire.AuditVerifyReport, error) {
	names, err := segments(dir)
	if err != nil {
		return nil, err
	}
	rep := &wire.AuditVerifyReport{Segments: len(names)}
	var seq uint64
	var head []byte
	started := false
	bad := func(seg string, off int64, s uint64, format string, args ...any) (*wire.AuditVerifyReport, error) {
		rep.Problem = &wire.AuditProblem{Segment: seg, Offset: off, Seq: s, Reason: fmt.Sprintf(format, args...)}
		return rep, nil
	}
	for _, name := range names {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		fi, _ := f.Stat()
		var problem *wire.AuditProblem
		sawHeader := false
		err = readFrames(f, fi.Size(), func(fr frame) error {
			fail := func(s uint64, format string, args ...any) error {
				problem = &wire.AuditProblem{Segment: name, Offset: fr.offset, Seq: s, Reason: fmt.Sprintf(format, args...)}
				return problem
			}
			switch fr.typ {
			case frameHeader:
				var h segmentHeader
				if err := msgpack.Unmarshal(fr.payload, &h); err != nil {
					return fail(0, "unreadable segment header: %v", err)
				}
				if fr.offset != 0 || sawHeader {
					return fail(0, "a segment header in the middle of a segment")
				}
				sawHeader = true
				if !started {
					seq, head, started = h.FirstSeq-1, h.PrevHash, true
					rep.FirstSeq = h.FirstSeq
				} else if h.FirstSeq != seq+1 || !bytes.Equal(h.PrevHash, head) {
					return fail(0, "the segment does not continue the chain (starts at %d after %d)", h.FirstSeq, seq)
				}
			case frameBlock:
				if !sawHeader {
					return fail(0, "a block before the segment header")
				}
				recs, err := decodeBlock(fr.payload)
				if err != nil {
					return fail(0, "undecodable block: %v", err)
				}
				for _, r := range recs {
					if r.Seq != seq+1 {
						return fail(r.Seq, "record %d follows %d: a record is missing or out of order", r.Seq, seq)
					}
					want := chain(head, r.Seq, r.Event)
					if !bytes.Equal(want, r.Hash) {
						return fail(r.Seq, "the hash chain breaks: the record or one before it was altered")
					}
					seq, head = r.Seq, r.Hash
					rep.Records++
				}
			case frameCheckpoint:
				var c Checkpoint
				if err := msgpack.Unmarshal(fr.payload, &c); err != nil {
					return fail(0, "unreadable checkpoint: %v", err)
				}
				if c.Size != seq || !bytes.Equal(c.Root, head) {
					return fail(c.Size, "checkpoint for %d records disagrees with the chain at %d", c.Size, seq)
				}
				if pub != nil && !c.Verify(pub) {
					return fail(c.Size, "checkpoint signature does not verify")
				}
				rep.Checkpoints++
			}
			return nil
		})
		f.Close()
		if problem != nil {
			rep.Problem = problem
			rep.LastSeq = seq
			return rep, nil
		}
		if err != nil {
			var fe *frameError
			if errors.As(err, &fe) {
				return bad(name, fe.off, 0, "%s (record %d was the last good one)", fe.msg, seq)
			}
			return nil, err
		}
	}
	rep.LastSeq = seq
	rep.OK = true
	return rep, nil
}
