package sandbox

import "sync"

// placeholder is one created protected path, locked (fd) for a run.
type placeholder struct {
	path string
	fd   int
}

// held tracks the placeholders this process holds, path → locks, so one
// sandboxd running several commands in a workspace keeps one lock per run.
var held = &holdings{m: map[string][]placeholder{}}

type holdings struct {
	mu sync.Mutex
	m  map[string][]placeholder
}

func (h *holdings) add(p placeholder) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.m[p.path] = append(h.m[p.path], p)
}

func (h *holdings) take(path string) (placeholder, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	l := h.m[path]
	if len(l) == 0 {
		return placeholder{}, false
	}
	p := l[len(l)-1]
	h.m[path] = l[:len(l)-1]
	return p, true
}
