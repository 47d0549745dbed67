package profile

import (
	"testing"

	"github.com/moatsec/moat/pkg/wire"
)

// BenchmarkResolve is the in-process cost of one resolution (no bus).
func BenchmarkResolve(b *testing.B) {
	f := newFixture(b)
	r := f.resolver(b, false, "")
	req := &wire.ResolveRequest{Profile: "workspace-write", Workspace: f.ws, Cwd: f.ws + "/src"}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := r.Resolve(req); err != nil {
			b.Fatal(err)
		}
	}
}
