//go:build !linux

package sandbox

import (
	"fmt"
	"os"

	"github.com/moatsec/moat/pkg/wire"
)

// prepareCaches makes the profile's missing cache directories; off Linux the
// sandbox runs as the user itself, so a plain MkdirAll owns them right.
func prepareCaches(caches []wire.Cache, uid, gid int) (ready int, problems []string) {
	for _, c := range caches {
		if err := os.MkdirAll(c.Dir, 0o755); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", c.Dir, err))
			continue
		}
		ready++
	}
	return ready, problems
}
