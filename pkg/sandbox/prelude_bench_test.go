//go:build linux

package sandbox

import (
	"encoding/json"
	"testing"

	"github.com/moatsec/moat/pkg/sandbox/inside"
)

// BenchmarkPreludeDecode: what a helper spends decoding the seccomp
// filters sandboxd hands it as it starts (paid by every helper, pooled or
// not, before its run).
func BenchmarkPreludeDecode(b *testing.B) {
	pre, err := prelude()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var p inside.Prelude
		if err := json.Unmarshal(pre, &p); err != nil || len(p.Net.Program) == 0 {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(pre)), "bytes") // after the loop, which resets what came before it
}
