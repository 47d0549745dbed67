package store

import (
	"slices"
	"sort"
	"time"

	"github.com/moatsec/moat/pkg/wire"
)

// GapHorizon is how far an instance's seq must move past a missing one
// before the store reports it: one process publishes from many goroutines,
// so its events may arrive a little out of order.
const GapHorizon = 4096

// DefaultGapWait is how long a seq must have been missing before it is
// reported, on top of the horizon. It outlasts auditd's ack wait (30 s)
// several times over: after a crash, the batch auditd held unacked comes
// again only once that wait has passed, behind everything newer, so the
// horizon alone would report it missing for good.
const DefaultGapWait = 2 * time.Minute

// span is a run of missing seqs, first seen missing at seen.
type span struct {
	from, to uint64
	seen     time.Time
}

// source tracks one publishing process's seqs: the highest seen, and the
// runs missing below it, sorted. Runs, not single seqs, so a jump of any
// size costs one entry.
type source struct {
	high  uint64
	holes []span
	name  string
	inst  string
}

func (s *Store) see(ev *wire.AuditEvent) {
	if ev.Source == "" || ev.Seq == 0 {
		return
	}
	key := ev.Source + "/" + ev.Instance
	src := s.sources[key]
	if src == nil {
		// The first event of an instance: seqs before it may have gone
		// before this store's oldest segment, so they are not holes.
		s.sources[key] = &source{high: ev.Seq, name: ev.Source, inst: ev.Instance}
		return
	}
	if ev.Seq > src.high {
		if ev.Seq > src.high+1 {
			src.holes = append(src.holes, span{from: src.high + 1, to: ev.Seq - 1, seen: s.opts.Now()})
		}
		src.high = ev.Seq
		return
	}
	src.fill(ev.Seq, ev.Seq)
}

// fill removes the seqs from..to from the holes, in place: a run that
// loses its middle splits in two.
func (src *source) fill(from, to uint64) {
	i := sort.Search(len(src.holes), func(i int) bool { return src.holes[i].to >= from })
	for i < len(src.holes) && src.holes[i].from <= to {
		h := &src.holes[i]
		switch {
		case h.from >= from && h.to <= to: // wholly filled
			src.holes = slices.Delete(src.holes, i, i+1)
		case h.from < from && h.to > to: // its middle
			rest := span{from: to + 1, to: h.to, seen: h.seen}
			h.to = from - 1
			src.holes = slices.Insert(src.holes, i+1, rest)
			return
		case h.from < from: // its end
			h.to = from - 1
			i++
		default: // its start
			h.from = to + 1
			return
		}
	}
}

// reported removes the holes a stored audit.gap event already names.
func (s *Store) reported(ev *wire.AuditEvent) {
	src := s.sources[str(ev.Detail["source"])+"/"+str(ev.Detail["instance"])]
	from, to := num(ev.Detail["missing_from"]), num(ev.Detail["missing_to"])
	if src == nil || from == 0 || to < from {
		return
	}
	src.fill(from, to)
}

// gaps turns holes past the horizon, missing for longer than the gap wait,
// into audit.gap events, one per run of missing seqs.
func (s *Store) gaps() []*wire.AuditEvent {
	wait := s.opts.GapWait
	if wait <= 0 {
		wait = DefaultGapWait
	}
	now := s.opts.Now()
	var out []*wire.AuditEvent
	for _, src := range s.sources {
		if len(src.holes) == 0 || src.high <= GapHorizon {
			continue
		}
		below := src.high - GapHorizon // seqs under it are past the horizon
		var due [][2]uint64
		for _, h := range src.holes {
			if h.from >= below {
				break
			}
			if now.Sub(h.seen) >= wait {
				due = append(due, [2]uint64{h.from, min(h.to, below-1)})
			}
		}
		for _, d := range due {
			out = append(out, &wire.AuditEvent{ID: wire.NewID(), TS: now.UTC(), Source: "auditd", Kind: wire.KindAuditGap,
				Detail: map[string]any{"source": src.name, "instance": src.inst, "missing_from": d[0], "missing_to": d[1]}})
			src.fill(d[0], d[1])
		}
	}
	return out
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// num reads a number that msgpack or JSON may have decoded as any integer type.
func num(v any) uint64 {
	switch x := v.(type) {
	case uint64:
		return x
	case int64:
		return uint64(x)
	case uint32:
		return uint64(x)
	case int32:
		return uint64(x)
	case uint16:
		return uint64(x)
	case int16:
		return uint64(x)
	case uint8:
		return uint64(x)
	case int8:
		return uint64(x)
	case int:
		return uint64(x)
	case float64:
		return uint64(x)
	}
	return 0
}
