package policyd

import (
	"fmt"
	"testing"

	"github.com/moatsec/moat/pkg/wire"
)

func hashed(t *testing.T, p *wire.Profile) string {
	t.Helper()
	h, err := wire.ProfileHash(p)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestProfileCacheBoundedInBytes: the kept profiles are bounded by what
// they hold, not only by their number. A caller may send a whole profile
// of half a MiB of empty strings (each 16 bytes and more decoded): such a
// profile is used for its check but not kept, and many large ones stay
// within the budget together.
func TestProfileCacheBoundedInBytes(t *testing.T) {
	var c profileCache
	huge := &wire.Profile{Name: "huge", FS: wire.FS{Write: make([]string, 400_000)}}
	if c.keep(hashed(t, huge), huge) {
		t.Error("a profile holding ~6 MiB decoded was kept")
	}
	for i := range maxProfiles {
		p := &wire.Profile{Name: fmt.Sprint("big-", i), FS: wire.FS{Write: make([]string, 8_000)}}
		c.keep(hashed(t, p), p)
	}
	if n := c.bytes; n > maxProfileBytes {
		t.Errorf("the cache holds %d bytes of profiles; its budget is %d", n, maxProfileBytes)
	}
	small := &wire.Profile{Name: "small", Workspace: "/ws", FS: wire.FS{Write: []string{"/ws"}}}
	if h := hashed(t, small); !c.keep(h, small) || c.get(h) != small {
		t.Error("a small profile was not kept")
	}
}
