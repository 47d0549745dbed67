//go:build linux

package sandbox

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moatsec/moat/pkg/wire"
)

const cgroupRoot = "/sys/fs/cgroup"

// cgroup is one run's control group: memory, pids and CPU accounting, on
// cgroup v2 when the unified hierarchy has those controllers, else on v1
// (one directory per controller). Each run's group is created under
// sandboxd's own, so limits on sandboxd bound its runs too.
//
// A group is made with its helper, before the run's request (makeCgroup,
// from spawn: for a pooled helper, ahead of time), and the helper joins it
// as it starts; the run's limits are written when the request comes
// (limit), before the helper reads its configuration, so the command never
// runs without them. A group is named for the sandboxd that made it
// (run-<pid>-<random>): the pool removes the groups of helpers it never
// hands out, and those a killed sandboxd left (sweepGroups).
type cgroup struct {
	v2     bool
	dirs   []string // every directory to join, kill and remove
	mem    string   // where memory files live
	cpu    string   // where CPU accounting lives
	pids   string   // where the pids limit lives
	memsw  bool     // v1: the memory controller accounts swap
	limits wire.Limits
	// emptied is set once killAll found the group empty: with no process
	// left in it, none can join it again (only the run's helper joins it,
	// as it starts).
	emptied bool
}

// groupPrefix starts the name of every group this process makes.
var groupPrefix = fmt.Sprintf("run-%d-", os.Getpid())

// makeCgroup makes a group with no limits yet (see limit).
func makeCgroup() (*cgroup, error) {
	id := make([]byte, 8)
	rand.Read(id)
	name := groupPrefix + hex.EncodeToString(id)
	if layout().v2 {
		return makeCgroupV2(name)
	}
	return makeCgroupV1(name)
}

// newCgroup makes a group with limits l.
func newCgroup(l wire.Limits) (*cgroup, error) {
	c, err := makeCgroup()
	if err != nil {
		return nil, err
	}
	if err := c.limit(l); err != nil {
		c.remove()
		return nil, err
	}
	return c, nil
}

// cgroupLayout is how the machine mounts cgroups: the unified hierarchy
// or v1, and where each v1 controller is mounted. It does not change
// while sandboxd runs, so it is looked at once, not on every run;
// sandboxd's own group within it is read on every run (sandboxd may be
// moved).
type cgroupLayout struct {
	v2     bool
	mounts map[string]string // v1 controller → its mount
	errs   map[string]error  // v1 controller → why it has none
}

var layout = sync.OnceValue(func() cgroupLayout {
	l := cgroupLayout{v2: unifiedHas("memory", "pids"), mounts: map[string]string{}, errs: map[string]error{}}
	if !l.v2 {
		for _, ctrl := range v1Controllers {
			l.mounts[ctrl], l.errs[ctrl] = v1Mount(ctrl)
		}
	}
	return l
})

// v1Controllers are the v1 hierarchies a run's group is made in.
var v1Controllers = []string{"memory", "pids", "cpuacct"}

// parents are the directories runs' groups are made in: "moat" under
// sandboxd's own group, in each v1 hierarchy or in the unified one.
func parents() ([]string, error) {
	if layout().v2 {
		base, err := ownV2Path()
		if err != nil {
			return nil, err
		}
		return []string{filepath.Join(base, "moat")}, nil
	}
	self, _ := os.ReadFile("/proc/self/cgroup")
	var out []string
	for _, ctrl := range v1Controllers {
		if err := layout().errs[ctrl]; err != nil {
			return nil, err
		}
		out = append(out, filepath.Join(layout().mounts[ctrl], v1Group(self, ctrl), "moat"))
	}
	return out, nil
}

func makeCgroupV1(name string) (*cgroup, error) {
	ps, err := parents()
	if err != nil {
		return nil, err
	}
	c := &cgroup{}
	for i, parent := range ps {
		dir := filepath.Join(parent, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			c.remove()
			return nil, fmt.Errorf("create %s: %w (sandboxd needs root or a delegated cgroup)", dir, err)
		}
		c.dirs = append(c.dirs, dir)
		switch v1Controllers[i] {
		case "memory":
			c.mem = dir
			_, err := os.Stat(filepath.Join(dir, "memory.memsw.limit_in_bytes"))
			c.memsw = err == nil
		case "pids":
			c.pids = dir
		case "cpuacct":
			c.cpu = dir
		}
	}
	return c, nil
}

func makeCgroupV2(name string) (*cgroup, error) {
	ps, err := parents()
	if err != nil {
		return nil, err
	}
	parent := ps[0]
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w (sandboxd needs root or a delegated cgroup)", parent, err)
	}
	os.WriteFile(filepath.Join(parent, "cgroup.subtree_control"), []byte("+memory +pids +cpu"), 0o644)
	dir := filepath.Join(parent, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	return &cgroup{v2: true, dirs: []string{dir}, mem: dir, cpu: dir, pids: dir}, nil
}

// limit writes the run's limits into the group.
func (c *cgroup) limit(l wire.Limits) error {
	c.limits = l
	if c.v2 {
		if err := writeFile(c.mem, "memory.max", l.MemoryBytes); err != nil {
			return err
		}
		writeFile(c.mem, "memory.swap.max", 0) // absent without swap accounting
	} else {
		if err := writeFile(c.mem, "memory.limit_in_bytes", l.MemoryBytes); err != nil {
			return err
		}
		if c.memsw {
			if err := writeFile(c.mem, "memory.memsw.limit_in_bytes", l.MemoryBytes); err != nil {
				return err
			}
		}
	}
	return writeFile(c.pids, "pids.max", l.Pids)
}

// sweepGroups removes the groups a sandboxd that is gone left behind (its
// helpers die with it, their groups do not). A group still holding a
// process is not removed (rmdir refuses it), nor one whose maker lives.
func sweepGroups() {
	ps, err := parents()
	if err != nil {
		return
	}
	for _, parent := range ps {
		entries, _ := os.ReadDir(parent)
		for _, e := range entries {
			pid, ok := groupOwner(e.Name())
			if !ok || pid == os.Getpid() || syscall.Kill(pid, 0) != syscall.ESRCH {
				continue
			}
			os.Remove(filepath.Join(parent, e.Name()))
		}
	}
}

// groupOwner is the pid of the sandboxd that made the group named name.
func groupOwner(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "run-")
	if !ok {
		return 0, false
	}
	pid, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(pid)
	return n, err == nil && n > 0
}

func writeFile(dir, file string, v int64) error {
	if err := os.WriteFile(filepath.Join(dir, file), []byte(strconv.FormatInt(v, 10)), 0o644); err != nil {
		return fmt.Errorf("set %s: %w", filepath.Join(dir, file), err)
	}
	return nil
}

// joinFiles are the files the helper writes "0" to, to join the group
// itself: v1 "tasks" (its own thread: no global lock, no RCU grace period),
// v2 "cgroup.procs".
func (c *cgroup) joinFiles() []string {
	name := "tasks"
	if c.v2 {
		name = "cgroup.procs"
	}
	out := make([]string, len(c.dirs))
	for i, d := range c.dirs {
		out[i] = filepath.Join(d, name)
	}
	return out
}

// killAll kills every process left in the group until it is empty.
func (c *cgroup) killAll() {
	if c.emptied {
		return
	}
	if c.v2 {
		os.WriteFile(filepath.Join(c.dirs[0], "cgroup.kill"), []byte("1"), 0o644)
	}
	for round := 0; round < 50; round++ {
		left := 0
		for _, d := range c.dirs {
			for _, pid := range procs(d) {
				syscall.Kill(pid, syscall.SIGKILL)
				left++
			}
		}
		if left == 0 {
			c.emptied = true
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// killNow, under cgroup v2, sends SIGKILL to every process in the group at
// once (cgroup.kill), without waiting for them to go: none runs another
// instruction of its own. v1 has no such file; there it does nothing.
func (c *cgroup) killNow() {
	if c.v2 {
		os.WriteFile(filepath.Join(c.dirs[0], "cgroup.kill"), []byte("1"), 0o644)
	}
}

// remove kills what is left and deletes the group.
func (c *cgroup) remove() {
	c.killAll()
	for _, d := range c.dirs {
		for i := 0; i < 100; i++ {
			if err := os.Remove(d); err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func procs(dir string) []int {
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// cpuUsed is the CPU time the whole group has used.
func (c *cgroup) cpuUsed() time.Duration {
	if c.v2 {
		if v, ok := keyed(filepath.Join(c.cpu, "cpu.stat"), "usage_usec"); ok {
			return time.Duration(v) * time.Microsecond
		}
		return 0
	}
	data, err := os.ReadFile(filepath.Join(c.cpu, "cpuacct.usage"))
	if err != nil {
		return 0
	}
	ns, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	return time.Duration(ns)
}

// oomKilled reports whether the kernel killed a process of the group for
// exceeding its memory limit.
func (c *cgroup) oomKilled() bool {
	file := "memory.oom_control"
	if c.v2 {
		file = "memory.events"
	}
	v, _ := keyed(filepath.Join(c.mem, file), "oom_kill")
	return v > 0
}

// pidsLimited reports whether the pids limit refused a fork in the group
// (pids.events "max", on v1 and v2 alike).
func (c *cgroup) pidsLimited() bool {
	for _, d := range c.dirs {
		if v, _ := keyed(filepath.Join(d, "pids.events"), "max"); v > 0 {
			return true
		}
	}
	return false
}

func (c *cgroup) describe() []string {
	v := "cgroup:v1"
	if c.v2 {
		v = "cgroup:v2"
	}
	return []string{fmt.Sprintf("%s memory=%d pids=%d cpu=%dms", v, c.limits.MemoryBytes, c.limits.Pids, c.limits.CPUMS)}
}

// keyed reads "key value" lines.
func keyed(path, key string) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// v1Mount is where the v1 controller ctrl is mounted.
func v1Mount(ctrl string) (string, error) {
	for _, cand := range []string{ctrl, "cpu,cpuacct", "cpuacct,cpu"} {
		if ctrl != "cpuacct" && cand != ctrl {
			continue
		}
		if fi, err := os.Stat(filepath.Join(cgroupRoot, cand)); err == nil && fi.IsDir() {
			return filepath.Join(cgroupRoot, cand), nil
		}
	}
	return "", fmt.Errorf("the %s cgroup controller is not mounted under %s", ctrl, cgroupRoot)
}

// v1Group is sandboxd's own group for ctrl, from /proc/self/cgroup's
// content self ("" for the root).
func v1Group(self []byte, ctrl string) string {
	rel := ""
	for _, line := range strings.Split(string(self), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 {
			for _, c := range strings.Split(parts[1], ",") {
				if c == ctrl {
					rel = parts[2]
				}
			}
		}
	}
	return rel
}

func ownV2Path() (string, error) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rel, ok := strings.CutPrefix(line, "0::"); ok {
			return filepath.Join(cgroupRoot, rel), nil
		}
	}
	return "", errors.New("no cgroup v2 membership in /proc/self/cgroup")
}

// unifiedHas reports whether the v2 hierarchy mounted at cgroupRoot offers
// the controllers (a v1 machine's empty /sys/fs/cgroup/unified does not count).
func unifiedHas(ctrls ...string) bool {
	data, err := os.ReadFile(filepath.Join(cgroupRoot, "cgroup.controllers"))
	if err != nil {
		return false
	}
	have := strings.Fields(string(data))
	for _, c := range ctrls {
		found := false
		for _, h := range have {
			found = found || h == c
		}
		if !found {
			return false
		}
	}
	return true
}
