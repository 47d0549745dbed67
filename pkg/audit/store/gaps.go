package store

import (
	"sort"
	"time"

	"github.com/moatsec/moat/pkg/wire"
)

// GapHorizon is how far an instance's seq must move past a missing one
// before the store reports it: one process publishes from many goroutines,
// so its events may arrive a little out of order.
const GapHorizon = 4096

// source tracks one publishing process's seqs.
type source struct {
	high  uint64
	holes map[uint64]struct{}
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
		s.sources[key] = &source{high: ev.Seq, holes: map[uint64]struct{}{}, name: ev.Source, inst: ev.Instance}
		return
	}
	switch {
	case ev.Seq > src.high:
		for q := src.high + 1; q < ev.Seq && len(src.holes) < 1<<16; q++ {
			src.holes[q] = struct{}{}
		}
		src.high = ev.Seq
	default:
		delete(src.holes, ev.Seq)
	}
}

// reported removes the holes a stored audit.gap event already names.
func (s *Store) reported(ev *wire.AuditEvent) {
	src := s.sources[str(ev.Detail["source"])+"/"+str(ev.Detail["instance"])]
	if src == nil {
		return
	}
	from, to := num(ev.Detail["missing_from"]), num(ev.Detail["missing_to"])
	for q := from; q <= to && to-from < 1<<20; q++ {
		delete(src.holes, q)
	}
}

// gaps turns holes past the horizon into audit.gap events, one per run of
// missing seqs.
func (s *Store) gaps() []*wire.AuditEvent {
	var out []*wire.AuditEvent
	for _, src := range s.sources {
		if len(src.holes) == 0 {
			continue
		}
		var old []uint64
		for q := range src.holes {
			if q+GapHorizon < src.high {
				old = append(old, q)
			}
		}
		sort.Slice(old, func(i, j int) bool { return old[i] < old[j] })
		for i := 0; i < len(old); {
			j := i
			for j+1 < len(old) && old[j+1] == old[j]+1 {
				j++
			}
			out = append(out, &wire.AuditEvent{ID: wire.NewID(), TS: time.Now().UTC(), Source: "auditd", Kind: "audit.gap",
				Detail: map[string]any{"source": src.name, "instance": src.inst, "missing_from": old[i], "missing_to": old[j]}})
			for k := i; k <= j; k++ {
				delete(src.holes, old[k])
			}
			i = j + 1
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
