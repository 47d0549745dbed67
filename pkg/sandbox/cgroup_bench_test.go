//go:build linux

package sandbox

import (
	"testing"

	"github.com/moatsec/moat/pkg/wire"
)

// BenchmarkCgroup measures a run's group from creation to removal, with
// the reads a run makes of it.
func BenchmarkCgroup(b *testing.B) {
	l := wire.Limits{MemoryBytes: 1 << 30, Pids: 256, CPUMS: 1000}
	for i := 0; i < b.N; i++ {
		cg, err := newCgroup(l)
		if err != nil {
			b.Fatal(err)
		}
		cg.joinFiles()
		cg.killAll()
		cg.cpuUsed()
		cg.oomKilled()
		cg.pidsLimited()
		cg.remove()
	}
}
