package bench

import (
	"os/exec"
	"time"
)

// CPU per run, the figure that bounds runs per second on a busy host, is
// reported in each run series' Extra:
//
//   - cpu_ms_per_run: for a way benchd starts itself (plain exec, sandboxd
//     exec, bwrap), the CPU of the process and every descendant it reaped
//     (wait4's rusage); for the full pipeline, the CPU sandboxd and the
//     children it reaped (the sandbox helpers and, through them, the
//     commands) used over the series, divided by the runs: the cgroup each
//     run had is gone by then, and its CPU reached sandboxd's cutime and
//     cstime in /proc when the helper was reaped. A pooled helper's start is
//     counted with the run that took it.
//   - cpu_ms_stack_per_run (full pipeline): the same for busd and every
//     daemon: the bus, the profile, the decision and the audit event too.
//   - cpu_x_bwrap: cpu_ms_per_run against bwrap's in the same run.
//
// /proc counts in clock ticks (10 ms): over 200 runs that is 0.05 ms a run.

// way is one way of running /bin/true.
type way struct {
	name    string
	daemons bool // its CPU is the stack's, not a child's of benchd
	op      func() (cpu time.Duration, err error)
	cpu     time.Duration // summed over successful runs
	runs    int
}

// time runs the way once into rec.
func (w *way) time(rec *Recorder) {
	t0 := time.Now()
	cpu, err := w.op()
	rec.Observe(time.Since(t0), err)
	if err == nil {
		w.cpu += cpu
		w.runs++
	}
}

// childCPU runs the command made by mk and returns its CPU with that of
// every descendant it waited for.
func childCPU(mk func() *exec.Cmd) func() (time.Duration, error) {
	return func() (time.Duration, error) {
		cmd := mk()
		err := cmd.Run()
		if cmd.ProcessState == nil {
			return 0, err
		}
		return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), err
	}
}

// cpuExtra adds the way's CPU per run to r; before and after are the
// stack's processes around the series.
func (w *way) cpuExtra(r Result, before, after []ProcStat) {
	if w.runs == 0 {
		return
	}
	if !w.daemons {
		r.Extra["cpu_ms_per_run"] = ms64(w.cpu) / float64(w.runs)
		return
	}
	sandboxd := func(p ProcStat) bool { return p.Name == "sandboxd" }
	all := func(ProcStat) bool { return true }
	if d, ok := cpuDelta(before, after, sandboxd); ok {
		r.Extra["cpu_ms_per_run"] = d * 1000 / float64(w.runs)
	}
	if d, ok := cpuDelta(before, after, all); ok {
		r.Extra["cpu_ms_stack_per_run"] = d * 1000 / float64(w.runs)
	}
}

// cpuDelta is the CPU seconds, children's included, that the processes
// picked used between before and after; not ok when none was there
// throughout (a daemon restarted in between is left out).
func cpuDelta(before, after []ProcStat, pick func(ProcStat) bool) (float64, bool) {
	was := map[int]ProcStat{}
	for _, p := range before {
		was[p.PID] = p
	}
	sum, ok := 0.0, false
	for _, p := range after {
		if b, there := was[p.PID]; there && pick(p) {
			sum += p.CPUSecs + p.ChildCPUSecs - b.CPUSecs - b.ChildCPUSecs
			ok = true
		}
	}
	return sum, ok
}

// cpuAgainst sets cpu_x_<name> on every series with a CPU figure: its CPU
// per run against that of the series called name.
func cpuAgainst(rs []Result, name string) {
	var base float64
	for _, r := range rs {
		if r.Name == name {
			base = r.Extra["cpu_ms_per_run"]
		}
	}
	if base <= 0 {
		return
	}
	for _, r := range rs {
		if v, ok := r.Extra["cpu_ms_per_run"]; ok {
			r.Extra["cpu_x_"+name] = v / base
		}
	}
}

// p50Against gives each result its p50 over name's, measured in the same
// run: x_<name>_p50, the figure to judge when absolutes drift between runs.
func p50Against(rs []Result, name string) {
	var base float64
	for _, r := range rs {
		if r.Name == name {
			base = r.P50
		}
	}
	if base <= 0 {
		return
	}
	for _, r := range rs {
		if r.Extra != nil {
			r.Extra["x_"+name+"_p50"] = r.P50 / base
		}
	}
}

func ms64(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
