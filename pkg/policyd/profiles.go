package policyd

import (
	"sync"

	"github.com/moatsec/moat/pkg/wire"
)

// maxProfiles and maxProfileBytes bound the resolved profiles policyd
// keeps by hash, in number and in what they hold decoded (heapSize): a
// profile is ~2 KB, but a caller may send one of half a MiB of empty
// strings, which decodes to many times that. One over maxProfileBytes/64
// is used for its check and not kept.
const (
	maxProfiles     = 1024
	maxProfileBytes = 32 << 20
)

// profileCache holds resolved profiles by their wire.ProfileHash, so that a
// check naming a hash decodes no profile (docs/bus.md, "Profiles by hash").
//
// Invariants: a profile is stored only under the hash policyd computed of
// it (never a caller's claim); a stored profile is never changed (checks
// share it read-only); at most maxProfiles are held, holding at most
// maxProfileBytes together, arbitrary ones leaving to make room.
type profileCache struct {
	mu    sync.RWMutex
	m     map[string]kept
	bytes int // the heapSize of the profiles in m
}

type kept struct {
	p    *wire.Profile
	size int
}

func (c *profileCache) get(hash string) *wire.Profile {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[hash].p
}

// keep stores p under its own hash when that is claimed; it reports whether
// it did.
func (c *profileCache) keep(claimed string, p *wire.Profile) bool {
	size := heapSize(p)
	if size > maxProfileBytes/64 {
		return false
	}
	h, err := wire.ProfileHash(p)
	if err != nil || h != claimed {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]kept{}
	}
	if old, ok := c.m[h]; ok {
		delete(c.m, h)
		c.bytes -= old.size
	}
	for k, v := range c.m {
		if len(c.m) < maxProfiles && c.bytes+size <= maxProfileBytes {
			break
		}
		delete(c.m, k)
		c.bytes -= v.size
	}
	c.m[h] = kept{p: p, size: size}
	c.bytes += size
	return true
}

// heapSize is about what p holds decoded: its strings with their headers,
// its slices' and maps' own.
func heapSize(p *wire.Profile) int {
	const str, slice, entry = 16, 24, 48
	n := 512 // the struct
	for _, s := range []string{p.Name, p.Base, p.Description, p.Workspace, p.Cwd, p.Source, p.Irreversible} {
		n += len(s)
	}
	for _, l := range [][]string{p.FS.Write, p.FS.ReadDeny, p.FS.WriteDeny, p.FS.WriteDenyGlobs, p.FS.Unguarded, p.FS.Read,
		p.Net.Allow, p.Net.Deny, p.Env.Pass, p.NarrowedBy} {
		n += slice + str*len(l)
		for _, s := range l {
			n += len(s)
		}
	}
	for k, v := range p.Env.Set {
		n += entry + len(k) + len(v)
	}
	for _, c := range p.Caches {
		n += 2*str + len(c.Name) + len(c.Dir)
	}
	return n
}
