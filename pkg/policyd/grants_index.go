package policyd

import (
	"time"

	"github.com/moatsec/moat/pkg/wire"
)

// index holds grants in memory, keyed by workspace, profile and pattern
// words, so that finding the grants that may cover a command costs one map
// lookup per leading word of it (at most wire.GrantMaxPrefix, over at most
// wire.GrantMaxPatternSize bytes), however many grants there are.
type index struct {
	byKey map[string]map[string]*wire.Grant // key → id → grant
	keyOf map[string]string                 // id → key
}

func newIndex() *index {
	return &index{byKey: map[string]map[string]*wire.Grant{}, keyOf: map[string]string{}}
}

// indexKey is workspace NUL profile, then NUL and each word.
func indexKey(workspace, profile string, words []string) string {
	b := make([]byte, 0, 64)
	b = append(append(append(b, workspace...), 0), profile...)
	for _, w := range words {
		b = append(append(b, 0), w...)
	}
	return string(b)
}

func (x *index) put(gr *wire.Grant) {
	x.remove(gr.ID)
	k := indexKey(gr.Workspace, gr.Profile, gr.Argv)
	if x.byKey[k] == nil {
		x.byKey[k] = map[string]*wire.Grant{}
	}
	x.byKey[k][gr.ID] = gr
	x.keyOf[gr.ID] = k
}

// get is the grant with id, or nil.
func (x *index) get(id string) *wire.Grant {
	k, ok := x.keyOf[id]
	if !ok {
		return nil
	}
	return x.byKey[k][id]
}

func (x *index) remove(id string) {
	k, ok := x.keyOf[id]
	if !ok {
		return
	}
	delete(x.byKey[k], id)
	if len(x.byKey[k]) == 0 {
		delete(x.byKey, k)
	}
	delete(x.keyOf, id)
}

// covering appends to out the grants that cover argv at now.
func (x *index) covering(out []wire.Grant, workspace, profile, session string, argv []string, now time.Time) []wire.Grant {
	var buf [256]byte
	b := append(append(append(buf[:0], workspace...), 0), profile...)
	limit := len(b) + wire.GrantMaxPatternSize + wire.GrantMaxPrefix
	for i, w := range argv {
		if i >= wire.GrantMaxPrefix || len(b)+1+len(w) > limit {
			break
		}
		b = append(append(b, 0), w...)
		for _, gr := range x.byKey[string(b)] {
			if gr.Covers(workspace, profile, session, argv, now) {
				out = append(out, *gr)
			}
		}
	}
	return out
}

// all is every grant, in no order.
func (x *index) all() []*wire.Grant {
	out := make([]*wire.Grant, 0, len(x.keyOf))
	for _, ids := range x.byKey {
		for _, gr := range ids {
			out = append(out, gr)
		}
	}
	return out
}
