//go:build linux

package sandbox

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkPooledVsBwrap: a pooled Run of /bin/true under offline against
// bwrap --unshare-all running /bin/true, interleaved run by run in one
// process, as docs/performance.md describes. The helper is the real
// cmd/moat-sandbox-helper (Init builds it), or another commit's
// (MOAT_BENCH_HELPER_DIR). Before each pooled run the pool is full and its helpers wait for
// their configuration, as between a sandboxd's requests, so the run pays
// only what happens after its request. CPU is RUSAGE_CHILDREN around each
// run: the helper that served the run and its command (reaped just after
// Run returns, which Settle awaits outside the wall time; the refill that
// replaces it is not), bwrap and its children; "self" is
// this process's own CPU over the run (sandboxd's side, the refill's
// spawn included). Every figure is reported beside bwrap's in the same
// loop; nothing is asserted on time:
//
//	go test ./pkg/sandbox -run '^$' -bench PooledVsBwrap -benchtime 200x
func BenchmarkPooledVsBwrap(b *testing.B) {
	bw, err := exec.LookPath("bwrap")
	if err != nil {
		b.Fatalf("bwrap: %v (apt-get install bubblewrap)", err)
	}
	useBuiltHelper(b)
	_, p := initWorkspace(b, "offline")
	EnablePool(2)
	defer EnablePool(0)
	var wall, cpu map[string][]time.Duration = map[string][]time.Duration{}, map[string][]time.Duration{}
	var self time.Duration
	bwrap := func() error {
		return exec.Command(bw, "--unshare-all", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "/bin/true").Run()
	}
	pooled := func() error {
		res, err := Run(context.Background(), &Spec{Argv: []string{"/bin/true"}, Profile: p})
		if err == nil && res.ExitCode != 0 {
			b.Fatalf("exit %d: %s", res.ExitCode, res.Stderr)
		}
		return err
	}
	for b.Loop() {
		for _, k := range []string{"bwrap", "pooled"} {
			if k == "pooled" {
				poolReady(b, true, 2)
			}
			c0, s0 := rusage(syscall.RUSAGE_CHILDREN), rusage(syscall.RUSAGE_SELF)
			t0 := time.Now()
			err := map[string]func() error{"bwrap": bwrap, "pooled": pooled}[k]()
			wall[k] = append(wall[k], time.Since(t0))
			if err != nil {
				b.Fatalf("%s: %v", k, err)
			}
			Settle() // the helper exits after the answer: its CPU is the run's
			cpu[k] = append(cpu[k], rusage(syscall.RUSAGE_CHILDREN)-c0)
			if k == "pooled" {
				self += rusage(syscall.RUSAGE_SELF) - s0
			}
		}
	}
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	p50 := func(l []time.Duration) time.Duration {
		l = slices.Clone(l)
		slices.Sort(l)
		return l[len(l)/2]
	}
	mean := func(l []time.Duration) time.Duration {
		var s time.Duration
		for _, d := range l {
			s += d
		}
		return s / time.Duration(len(l))
	}
	n := time.Duration(len(wall["pooled"]))
	b.ReportMetric(us(p50(wall["pooled"])), "pooled-p50-µs")
	b.ReportMetric(us(p50(wall["bwrap"])), "bwrap-p50-µs")
	b.ReportMetric(float64(p50(wall["pooled"]))/float64(p50(wall["bwrap"])), "p50-x-bwrap")
	b.ReportMetric(us(mean(cpu["pooled"])), "helper+cmd-cpu-µs")
	b.ReportMetric(us(self/n), "self-cpu-µs")
	b.ReportMetric(us(mean(cpu["bwrap"])), "bwrap-cpu-µs")
	b.ReportMetric(float64(mean(cpu["pooled"])+self/n)/float64(mean(cpu["bwrap"])), "cpu-x-bwrap")
}

// useBuiltHelper runs the helper in MOAT_BENCH_HELPER_DIR (another
// commit's, to compare) for the rest of the benchmark, when it is set;
// otherwise the one Init built from this tree.
func useBuiltHelper(b *testing.B) {
	dir := os.Getenv("MOAT_BENCH_HELPER_DIR")
	if dir == "" {
		return
	}
	f, err := openHelperIn(filepath.Join(dir, "sandboxd"))
	if err != nil {
		b.Fatal(err)
	}
	EnablePool(0) // none of the helper before
	before := helperBin.file
	helperBin.file = f
	b.Cleanup(func() {
		EnablePool(0)
		helperBin.file = before
		f.Close()
	})
}

// poolReady waits until the pool holds n helpers of the kind, each blocked
// reading its configuration (its runtime up, nothing left to start).
func poolReady(b *testing.B, noNet bool, n int) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		pool.mu.Lock()
		var pids []int
		for _, h := range pool.idle[noNet] {
			pids = append(pids, h.cmd.Process.Pid)
		}
		pool.mu.Unlock()
		ready := len(pids) >= n
		for _, pid := range pids {
			// read(2) on the configuration's descriptor: "0 0x3 ...".
			s, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/syscall")
			ready = ready && strings.HasPrefix(string(s), "0 0x"+strconv.FormatInt(3, 16)+" ")
		}
		if ready {
			return
		}
		time.Sleep(500 * time.Microsecond)
	}
	pool.mu.Lock()
	why := pool.failed
	pool.mu.Unlock()
	b.Fatalf("the pool was not ready after 60s (the latest refill: %v)", why)
}

func rusage(who int) time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(who, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
