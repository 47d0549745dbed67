package policyd

import (
	"sync"

	"github.com/moatsec/moat/pkg/wire"
)

// maxProfiles bounds the resolved profiles policyd keeps by hash; a
// profile is ~2 KB, so the cache stays under a few MiB.
const maxProfiles = 1024

// profileCache holds resolved profiles by their wire.ProfileHash, so that a
// check naming a hash decodes no profile (docs/bus.md, "Profiles by hash").
//
// Invariants: a profile is stored only under the hash policyd computed of
// it (never a caller's claim); a stored profile is never changed (checks
// share it read-only); at most maxProfiles are held, an arbitrary one
// leaving to make room.
type profileCache struct {
	mu sync.RWMutex
	m  map[string]*wire.Profile
}

func (c *profileCache) get(hash string) *wire.Profile {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[hash]
}

// keep stores p under its own hash when that is claimed; it reports whether
// it did.
func (c *profileCache) keep(claimed string, p *wire.Profile) bool {
	h, err := wire.ProfileHash(p)
	if err != nil || h != claimed {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*wire.Profile{}
	}
	if _, ok := c.m[h]; !ok && len(c.m) >= maxProfiles {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[h] = p
	return true
}
