//go:build linux

package escape

import (
	"os/exec"
	"sort"
	"testing"
	"time"
)

// BenchmarkTrue runs /bin/true three ways, interleaved in one loop so the
// machine's state is the same for each: plainly, through `sandboxd exec
// --profile offline`, and through bwrap with every namespace unshared. It
// reports each median and the ratios.
func BenchmarkTrue(b *testing.B) {
	bwrap, err := exec.LookPath("bwrap")
	if err != nil {
		b.Fatal("bwrap is not installed: apt-get install bubblewrap (.ci/run does this)")
	}
	base := b.TempDir()
	w := &world{ws: base, moatHome: base + "/moat", home: base + "/home"}
	ways := []struct {
		name string
		cmd  func() *exec.Cmd
	}{
		{"plain", func() *exec.Cmd { return exec.Command("/bin/true") }},
		{"sandboxd", func() *exec.Cmd { return w.exec("offline", []string{"/bin/true"}) }},
		{"bwrap", func() *exec.Cmd {
			return exec.Command(bwrap, "--unshare-all", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "/bin/true")
		}},
	}
	lat := make([][]time.Duration, len(ways))
	for i := 0; i < b.N; i++ {
		for k, way := range ways {
			cmd := way.cmd()
			t0 := time.Now()
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%s: %v\n%s", way.name, err, out)
			}
			lat[k] = append(lat[k], time.Since(t0))
		}
	}
	b.StopTimer()
	p50 := make([]float64, len(ways))
	for k, way := range ways {
		sort.Slice(lat[k], func(i, j int) bool { return lat[k][i] < lat[k][j] })
		p50[k] = float64(lat[k][len(lat[k])/2].Microseconds()) / 1000
		b.ReportMetric(p50[k], way.name+"-p50-ms")
	}
	b.ReportMetric(p50[1]/p50[0], "sandboxd/plain")
	b.ReportMetric(p50[1]/p50[2], "sandboxd/bwrap")
}
