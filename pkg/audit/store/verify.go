package store

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/moatsec/moat/pkg/wire"
)

// Verify checks a store directory end to end: every frame's CRC, every
// record's place in the hash chain (a flipped byte, a removed or reordered
// record breaks it), the chain across segments, and every checkpoint's
// signature and agreement with the chain (pub nil skips signatures). With
// an anchor (the latest checkpoint, as kept outside the store) it proves
// the store reaches it: the chain at anchor.Size must hash to its root, and
// a store that ends before it is missing the difference (a deleted or
// truncated tail, invisible from inside the store). It also reports runs
// with an allow decision but no exit record. It reports the first bad spot.
func Verify(dir string, pub ed25519.PublicKey, anchor *Checkpoint) (*wire.AuditVerifyReport, error) {
	names, err := segments(dir)
	if err != nil {
		return nil, err
	}
	rep := &wire.AuditVerifyReport{Segments: len(names)}
	if anchor != nil {
		rep.AnchorSize = anchor.Size
		if pub != nil && !anchor.Verify(pub) {
			rep.Problem = &wire.AuditProblem{Reason: fmt.Sprintf("the anchor checkpoint (%d records) does not verify: its signature is not this store's key", anchor.Size)}
			return rep, nil
		}
	}
	runs := openRuns{ids: map[string]uint64{}, closed: map[string]bool{}}
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
				if err := unmarshal(fr.payload, &h); err != nil {
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
					if anchor != nil && seq == anchor.Size && !bytes.Equal(head, anchor.Root) {
						return fail(seq, "the chain disagrees with the anchor checkpoint at record %d: the store was rewritten or replaced", seq)
					}
					runs.see(r.Event)
				}
			case frameCheckpoint:
				var c Checkpoint
				if err := unmarshal(fr.payload, &c); err != nil {
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
	last := ""
	if len(names) > 0 {
		last = names[len(names)-1]
	}
	if anchor != nil && seq < anchor.Size {
		rep.Missing = anchor.Size - seq
		rep.Problem = &wire.AuditProblem{Segment: last, Seq: seq, Reason: fmt.Sprintf(
			"the store ends at record %d but the anchor checkpoint signed %s covers %d: %d records are missing (a deleted or truncated tail)",
			seq, time.Unix(0, anchor.TS).UTC().Format(time.RFC3339), anchor.Size, rep.Missing)}
		return rep, nil
	}
	if rep.OpenRuns, rep.OpenRunIDs = runs.open(); rep.OpenRuns > 0 {
		rep.Problem = &wire.AuditProblem{Segment: last, Seq: seq, Reason: fmt.Sprintf(
			"%d runs have an allow decision but no exit record: still running, or their exit was lost (request ids %s)",
			rep.OpenRuns, strings.Join(rep.OpenRunIDs, ", "))}
		return rep, nil
	}
	rep.OK = true
	return rep, nil
}

// openRuns follows runs through the chain: an allow decision opens one,
// its exit (or failure) record closes it, in whichever order the store
// holds them — a batch auditd held when it was killed comes again after
// its ack wait, behind newer events, so a decision may follow its exit.
type openRuns struct {
	ids    map[string]uint64 // request id → when seen
	closed map[string]bool   // exits seen before their decision
	n      uint64
}

// maxOpenRunIDs bounds the ids a report names.
const maxOpenRunIDs = 20

func (o *openRuns) see(event []byte) {
	var ev struct{ Kind, RequestID, Verdict string }
	if unmarshal(event, &ev) != nil || ev.RequestID == "" {
		return
	}
	switch ev.Kind {
	case wire.KindRunDecision:
		if ev.Verdict != wire.VerdictAllow {
			return
		}
		if o.closed[ev.RequestID] {
			delete(o.closed, ev.RequestID)
			return
		}
		o.n++
		o.ids[ev.RequestID] = o.n
	case wire.KindRunExit, wire.KindRunFailed:
		if _, ok := o.ids[ev.RequestID]; ok {
			delete(o.ids, ev.RequestID)
		} else {
			o.closed[ev.RequestID] = true
		}
	}
}

// open counts the runs left open and names the first of them.
func (o *openRuns) open() (int, []string) {
	ids := make([]string, 0, len(o.ids))
	for id := range o.ids {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return o.ids[ids[i]] < o.ids[ids[j]] })
	return len(ids), ids[:min(len(ids), maxOpenRunIDs)]
}
