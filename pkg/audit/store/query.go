package store

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moatsec/moat/pkg/wire"
)

func matches(q *wire.AuditQuery, it *IndexItem) bool {
	return (q.SessionID == "" || it.Session == q.SessionID) && (q.RequestID == "" || it.Request == q.RequestID) &&
		(q.Kind == "" || it.Kind == q.Kind) && (q.Verdict == "" || it.Verdict == q.Verdict) &&
		(q.Profile == "" || it.Profile == q.Profile) && (q.Source == "" || it.Source == q.Source) &&
		(q.Since.IsZero() || it.TS >= q.Since.UnixNano()) && (q.Until.IsZero() || it.TS < q.Until.UnixNano())
}

// Query returns the events matching q, oldest first, a page at a time: a
// page ends at q.Limit events or once it holds q.MaxBytes of events as
// JSON, and holds at least one event when one matches.
func (s *Store) Query(q wire.AuditQuery) (*wire.AuditPage, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	q.Limit = min(q.Limit, wire.MaxAuditPage)
	if q.MaxBytes <= 0 || q.MaxBytes > wire.MaxAuditPageBytes {
		q.MaxBytes = wire.MaxAuditPageBytes
	}
	size := 0
	s.mu.RLock()
	defer s.mu.RUnlock()
	res := &wire.AuditPage{Events: []wire.StoredEvent{}}
	for _, seg := range s.order {
		items := s.index[seg]
		if len(items) == 0 || items[len(items)-1].Seq <= q.Cursor {
			continue
		}
		blocks := map[int64][]Record{}
		for i := range items {
			it := &items[i]
			if it.Seq <= q.Cursor || !matches(&q, it) {
				continue
			}
			if len(res.Events) == q.Limit {
				res.Next = res.Events[len(res.Events)-1].Seq
				return res, nil
			}
			recs, ok := blocks[it.Offset]
			if !ok {
				var err error
				if recs, err = s.block(seg, it.Offset); err != nil {
					return nil, err
				}
				blocks[it.Offset] = recs
			}
			for _, r := range recs {
				if r.Seq != it.Seq {
					continue
				}
				var ev wire.AuditEvent
				if err := unmarshal(r.Event, &ev); err != nil {
					return nil, fmt.Errorf("record %d: %w", r.Seq, err)
				}
				if q.Text != "" && !containsText(&ev, q.Text) {
					continue
				}
				// The JSON size bounds the reply in either codec (msgpack is smaller).
				j, err := json.Marshal(&ev)
				if err != nil {
					return nil, fmt.Errorf("record %d: %w", r.Seq, err)
				}
				if len(res.Events) > 0 && size+len(j) > q.MaxBytes {
					res.Next = res.Events[len(res.Events)-1].Seq
					return res, nil
				}
				size += len(j) + 32 // the seq and the wrapping
				res.Events = append(res.Events, wire.StoredEvent{Seq: r.Seq, Event: ev})
			}
		}
	}
	return res, nil
}

// block reads and decodes the block frame at off of seg.
func (s *Store) block(seg string, off int64) ([]Record, error) {
	f, err := os.Open(filepath.Join(s.opts.Dir, seg))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var hdr [frameOverhead]byte
	if _, err := f.ReadAt(hdr[:], off); err != nil {
		return nil, err
	}
	var out []Record
	fi, _ := f.Stat()
	err = readFrames(&offsetReader{f, off}, min(fi.Size()-off, int64(frameOverhead)+int64(uint32(hdr[1])<<24|uint32(hdr[2])<<16|uint32(hdr[3])<<8|uint32(hdr[4]))), func(fr frame) error {
		if fr.typ != frameBlock {
			return fmt.Errorf("%s offset %d: not a block", seg, off)
		}
		recs, err := decodeBlock(fr.payload)
		out = recs
		return err
	})
	return out, err
}

// offsetReader reads f from off on, as if it started there.
type offsetReader struct {
	f   *os.File
	off int64
}

func (r *offsetReader) ReadAt(p []byte, off int64) (int, error) { return r.f.ReadAt(p, r.off+off) }

func containsText(ev *wire.AuditEvent, text string) bool {
	if strings.Contains(strings.Join(ev.Argv, " "), text) || strings.Contains(ev.Cwd, text) || strings.Contains(ev.Kind, text) {
		return true
	}
	for _, r := range ev.Reasons {
		if strings.Contains(r.Message, text) || strings.Contains(r.Rule, text) {
			return true
		}
	}
	return strings.Contains(fmt.Sprint(ev.Detail), text)
}
