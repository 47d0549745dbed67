//go:build linux

package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/wire"
	"golang.org/x/sys/unix"
)

// BenchmarkWatch measures what the git-directory protection adds to a run
// in a workspace of 10,000 and 100,000 files (16 files a directory, as in
// large source trees, and a git directory): the look before the run
// (refresh, list the surfaces) and the check after it (refresh, check the
// git directories), each with nothing changed. p50-ms is per iteration.
func BenchmarkWatch(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		ws := benchWorkspace(b, n)
		p := &wire.Profile{Workspace: ws, FS: wire.FS{Write: []string{ws}}}
		w, held := watchRun(p) // the first look reads everything once
		w.hold(held)
		w.check()
		var dirs []string
		for d := range w.trees[0].dirs {
			dirs = append(dirs, d)
		}
		b.Run(fmt.Sprintf("files=%d/before", n), func(b *testing.B) {
			var d []time.Duration
			for b.Loop() {
				t0 := time.Now()
				w, held := watchRun(p)
				d = append(d, time.Since(t0))
				w.hold(held)
				w.check()
			}
			reportP50(b, d)
		})
		b.Run(fmt.Sprintf("files=%d/after", n), func(b *testing.B) {
			var d, floor []time.Duration
			for b.Loop() {
				w, held := watchRun(p)
				w.hold(held)
				t0 := time.Now()
				if f := w.check(); len(f) > 0 {
					b.Fatalf("found %v", f)
				}
				d = append(d, time.Since(t0))
				// The same-run baseline: one bare lstat per directory, the
				// least any walk of these directories costs.
				t0 = time.Now()
				var st unix.Stat_t
				for _, dir := range dirs {
					unix.Lstat(dir, &st)
				}
				floor = append(floor, time.Since(t0))
			}
			reportP50(b, d)
			slices.Sort(floor)
			b.ReportMetric(float64(floor[len(floor)/2].Microseconds())/1000, "floor-p50-ms")
		})
	}
}

func reportP50(b *testing.B, d []time.Duration) {
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, "p50-ms")
}

// benchWorkspace lays out n files, 16 a directory, 8 directories a
// directory, and a git directory, on disk (not /tmp's tmpfs) as real
// workspaces are; it is removed when the benchmark ends.
func benchWorkspace(b *testing.B, n int) string {
	b.Helper()
	base, err := os.MkdirTemp("/var/tmp", "moat-bench-ws-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(base) })
	ws := filepath.Join(base, "ws")
	dirs := []string{ws}
	for made := 0; made < n; {
		d := dirs[0]
		dirs = dirs[1:]
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
		for i := 0; i < 16 && made < n; i++ {
			if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%02d.go", i)), []byte("package x\n"), 0o644); err != nil {
				b.Fatal(err)
			}
			made++
		}
		for i := 0; i < 8; i++ {
			dirs = append(dirs, filepath.Join(d, fmt.Sprintf("d%d", i)))
		}
	}
	for _, f := range []string{".git/HEAD", ".git/config", ".git/hooks/pre-commit.sample", ".git/objects/info/x", ".git/refs/heads/main"} {
		os.MkdirAll(filepath.Join(ws, filepath.Dir(f)), 0o755)
		os.WriteFile(filepath.Join(ws, f), []byte("[core]\n\tbare = false\n"), 0o644)
	}
	return ws
}
