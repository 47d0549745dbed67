package bench

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ProcStat is a daemon's memory and CPU as /proc tells it.
type ProcStat struct {
	Name     string  `json:"name"`
	PID      int     `json:"pid"`
	RSSBytes int64   `json:"rss_bytes"`
	CPUSecs  float64 `json:"cpu_seconds"`
	// ChildCPUSecs is the CPU of the children it has reaped and theirs:
	// for sandboxd, its sandbox helpers and the commands they ran.
	ChildCPUSecs float64 `json:"child_cpu_seconds"`
}

// clockTicks is USER_HZ, 100 on every Linux moat runs on.
const clockTicks = 100

// readProc reads one process; ok is false when it is gone.
func readProc(pid int) (ProcStat, bool) {
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return ProcStat{}, false
	}
	// comm may hold spaces: the fields after it start past the last ')'.
	s := string(stat)
	open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || close < open {
		return ProcStat{}, false
	}
	f := strings.Fields(s[close+1:])
	if len(f) < 22 {
		return ProcStat{}, false
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	cutime, _ := strconv.ParseFloat(f[13], 64)
	cstime, _ := strconv.ParseFloat(f[14], 64)
	rssPages, _ := strconv.ParseInt(f[21], 10, 64)
	return ProcStat{Name: s[open+1 : close], PID: pid, RSSBytes: rssPages * int64(os.Getpagesize()),
		CPUSecs: (utime + stime) / clockTicks, ChildCPUSecs: (cutime + cstime) / clockTicks}, true
}

// findProcs lists the processes whose executable's base name is one of names.
func findProcs(names ...string) []ProcStat {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	entries, _ := os.ReadDir("/proc")
	var out []ProcStat
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil || !want[filepath.Base(strings.TrimSuffix(exe, " (deleted)"))] {
			continue
		}
		if st, ok := readProc(pid); ok {
			st.Name = filepath.Base(strings.TrimSuffix(exe, " (deleted)"))
			out = append(out, st)
		}
	}
	return out
}
