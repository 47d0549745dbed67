//go:build linux

package e2e

import (
	"os/exec"
	"sort"
	"syscall"
	"testing"
	"time"
)

// BenchmarkColdStartProfiled measures a profiled process from exec to its
// first answer on $SRV.PING.profiled, against a running busd. Compare with
// BenchmarkExecTrue, the cost of starting any process here.
func BenchmarkColdStartProfiled(b *testing.B) {
	e := newEnv(b)
	_, url := startBus(b, e)
	nc := dialWait(b, e, url).Conn()
	lat := make([]time.Duration, 0, b.N)
	for i := 0; i < b.N; i++ {
		c := e.cmd("profiled")
		t0 := time.Now()
		if err := c.Start(); err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := nc.Request("$SRV.PING.profiled", nil, 5*time.Millisecond); err == nil {
				break
			}
			if time.Since(t0) > 10*time.Second {
				b.Fatal("profiled did not answer within 10s")
			}
		}
		lat = append(lat, time.Since(t0))
		c.Process.Signal(syscall.SIGKILL)
		c.Wait()
	}
	reportMedian(b, lat)
}

// BenchmarkExecTrue is the baseline: exec and wait for /bin/true.
func BenchmarkExecTrue(b *testing.B) {
	lat := make([]time.Duration, 0, b.N)
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := exec.Command("/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	reportMedian(b, lat)
}

func reportMedian(b *testing.B, lat []time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}
