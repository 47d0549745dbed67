//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moatsec/moat/pkg/sandbox/inside"
	"github.com/moatsec/moat/pkg/wire"
	"golang.org/x/sys/unix"
)

// Run runs spec under its profile and waits for it. An error wrapping
// ErrRefused means the command never started; otherwise the Result says how
// it ended (its exit code, a signal, a timeout, a limit it hit).
func Run(ctx context.Context, spec *Spec) (*Result, error) {
	if err := spec.validate(); err != nil {
		return nil, err
	}
	if err := Check(spec.Profile); err != nil {
		return nil, err
	}
	uid, gid, home, name, err := owner(spec.Profile.Workspace)
	if err != nil {
		return nil, err
	}
	cfg := &inside.Config{
		Argv: spec.Argv, Dir: spec.Dir, UID: uid, GID: gid,
		Env:      Environ(spec.Profile, spec.Env, home, name),
		NoNet:    spec.Profile.Net.Mode == wire.NetNone,
		UserNS:   os.Geteuid() != 0,
		Trusted:  spec.trusted(),
		TmpBytes: min(spec.Profile.Limits.FileBytes, spec.Profile.Limits.MemoryBytes),
		Egress:   egressOn(spec.Profile),
	}
	if cfg.Egress {
		cfg.Env = withProxyVars(cfg.Env)
	}
	caches := cacheNote(prepareCaches(spec.Profile.Caches, uid, gid))
	start := time.Now()
	var w *watch
	prof := spec.Profile // with every git directory protected besides
	if !cfg.Trusted {
		w, prof = protectGitDirs(spec.Profile)
		if dir, why := w.unlisted(); dir != "" {
			w.check()
			return nil, refuse("protected paths: sandboxd cannot list %s (%v), so a git directory below it could not be held read-only; nothing ran: make it readable to root, or move it out of the workspace", dir, why)
		}
		cfg.Placeholders, err = placeholders(prof)
		defer removePlaceholders(cfg.Placeholders)
		w.hold(prof.FS.WriteDeny, cfg.Placeholders)
		if err != nil {
			w.check()
			return nil, refuse("protected paths: %v", err)
		}
	}
	cfg.Profile = helperProfile(prof)
	res, err := launch(ctx, spec, cfg)
	var moved []wire.Quarantined
	if w != nil {
		// After the command, before the answer: what the run left that
		// could make a program run on the host is moved aside.
		moved = quarantine(spec.quarantineDir(), w.roots, w.check())
	}
	if err != nil {
		if len(moved) > 0 {
			err = fmt.Errorf("%w (and %d files the run left were moved to the quarantine)", err, len(moved))
		}
		return nil, err
	}
	if len(moved) > 0 {
		// Said on the command's stderr too, live and captured, so a person
		// reading the output sees it whatever the client shows.
		var note bytes.Buffer
		ReportQuarantine(&note, moved)
		if spec.Stderr != nil {
			spec.Stderr.Write(note.Bytes())
		}
		res.Stderr = append(res.Stderr, note.Bytes()...)
		res.Quarantined = moved
	}
	if !cfg.Trusted && res.ExitCode != 0 {
		res.Paths = pathDenials(res.Stderr, prof, spec.Profile, spec.Dir)
	}
	res.Duration = time.Since(start)
	res.Isolation = append(res.Isolation, caches...)
	return res, nil
}

// protectGitDirs starts the run's watch and returns the profile with every
// git directory of its writable trees protected besides, and what the
// guard patterns match at the run's start (see watchRun).
func protectGitDirs(p *wire.Profile) (*watch, *wire.Profile) {
	w, extra := watchRun(p)
	if len(extra) == 0 {
		return w, p
	}
	q := *p
	q.FS.WriteDeny = append(slices.Clone(p.FS.WriteDeny), extra...)
	slices.Sort(q.FS.WriteDeny)
	q.FS.WriteDeny = slices.Compact(q.FS.WriteDeny)
	return w, &q
}

// helperProfile is what the helper needs of p (see inside.Profile): the
// allowlist's ports are worked out here, once, rather than in the helper.
func helperProfile(p *wire.Profile) *inside.Profile {
	return &inside.Profile{
		Workspace: p.Workspace,
		FS:        inside.FS{Write: p.FS.Write, ReadDeny: p.FS.ReadDeny, WriteDeny: p.FS.WriteDeny, Read: p.FS.Read},
		Net:       inside.Net{Mode: p.Net.Mode, Ports: allowedPortsOf(p.Net.Allow)},
		Limits:    inside.Limits{CPUMS: p.Limits.CPUMS, FileBytes: p.Limits.FileBytes},
	}
}

// owner is the user a command runs as: the workspace's owner when sandboxd
// is root, sandboxd's own user otherwise.
func owner(ws string) (uid, gid int, home, name string, err error) {
	uid, gid = os.Geteuid(), os.Getegid()
	if uid == 0 {
		var st unix.Stat_t
		if err := unix.Stat(ws, &st); err != nil {
			return 0, 0, "", "", refuse("workspace %s: %v", ws, err)
		}
		uid, gid = int(st.Uid), int(st.Gid)
	}
	name, home = strconv.Itoa(uid), "/"
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		name, home = u.Username, u.HomeDir
	}
	return uid, gid, home, name, nil
}

// launch takes a helper (in its namespaces and cgroup), gives the cgroup
// the run's limits, hands the helper the configuration, and supervises the
// run. The group goes with the helper.
func launch(ctx context.Context, spec *Spec, cfg *inside.Config) (*Result, error) {
	netns := cfg.NoNet || cfg.Egress
	limits := spec.Profile.Limits
	stdout := &capped{max: int(limits.OutputBytes), live: spec.Stdout}
	stderr := &capped{max: int(limits.OutputBytes), live: spec.Stderr}
	h, pooled, err := take(netns)
	if err != nil {
		return nil, err
	}
	var eg *egressRun
	defer func() { eg.stop() }()
	begin := func() (inside.Status, error) {
		if err := h.cg.limit(limits); err != nil {
			h.cmd.Process.Kill()
			h.wait()
			return inside.Status{}, refuse("cgroup: %v", err)
		}
		if cfg.Egress {
			// The way out is in place before the command starts.
			if eg, err = startEgress(h.cmd.Process.Pid, spec, stderr); err != nil {
				h.kill()
				return inside.Status{}, err
			}
		}
		return h.begin(cfg)
	}
	st, err := begin()
	if err != nil && pooled {
		// It may have died while waiting in the pool: a fresh one, once (a
		// refusal that is the run's own comes again and stands).
		h.release()
		eg.stop()
		if h, err = spawn(netns, false); err != nil {
			return nil, err
		}
		st, err = begin()
	}
	if err != nil {
		h.release()
		return nil, err
	}
	waitOutput := h.attach(spec.Stdin, stdout, stderr)
	cmd, cg := h.cmd, h.cg

	res := &Result{Isolation: append(st.Isolation, cg.describe()...)}
	done := make(chan error, 1)
	go func() { done <- h.wait() }()
	ended := make(chan ending, 1)
	go func() { ended <- h.outcome() }()
	var end ending
	var endRead bool
	timer := time.NewTimer(spec.timeout())
	defer timer.Stop()
	cpuTick := time.NewTicker(100 * time.Millisecond)
	defer cpuTick.Stop()
	var waitErr error
wait:
	for {
		select {
		case waitErr = <-done:
			break wait
		case end = <-ended:
			endRead, ended = true, nil
			if end.alone {
				break wait
			}
		case <-timer.C:
			res.TimedOut = true
			cmd.Process.Kill() // the namespace's init: the whole tree goes with it
			cg.killAll()
		case <-ctx.Done():
			cmd.Process.Kill()
			cg.killAll()
		case sig := <-spec.Signals:
			h.signal(sig)
		case <-cpuTick.C:
			if cg.cpuUsed() > time.Duration(spec.Profile.Limits.CPUMS)*time.Millisecond {
				res.CPUExceeded = true
				cmd.Process.Kill()
				cg.killAll()
			}
		}
	}
	if !endRead {
		end = <-ended
	}
	// Nothing outlives the run. Alone, the init has reaped the rest and
	// exits next: it is sent SIGKILL all the same (by its pidfd; under v2
	// the whole group is), and goes off the run's path (finishLater).
	// Otherwise what is left is killed and awaited here.
	if end.alone {
		cmd.Process.Kill()
		cg.killNow()
		defer h.finishLater()
	} else {
		cg.killAll()
		defer h.release()
	}
	waitOutput()
	var exitErr *exec.ExitError
	if !end.alone && waitErr != nil && !errors.As(waitErr, &exitErr) {
		return nil, fmt.Errorf("wait for the command: %w", waitErr)
	}
	res.ExitCode, res.Signal, res.Usage, res.Syscalls = end.code, end.signal, end.usage, end.refused
	if cpu := cg.cpuUsed(); cpu > 0 {
		res.Usage.UserUS = max(res.Usage.UserUS, cpu.Microseconds()-res.Usage.SysUS)
	}
	res.OOMKilled = cg.oomKilled()
	res.PidsLimited = cg.pidsLimited()
	res.NetDenied = eg.stop() // after its last denial line reached stderr
	res.Stdout, res.StdoutTruncated = stdout.result()
	res.Stderr, res.StderrTruncated = stderr.result()
	return res, nil
}

// sysProcAttr puts the helper in its namespaces and a process group of its
// own, so a signal to sandboxd's group (a terminal's Ctrl-C or resize, a
// supervisor's kill of the group) reaches no helper and no command: sandboxd
// stops its runs itself, as its drain says. The helper dies with sandboxd.
// Without root, a user namespace maps sandboxd's own ids (the command runs
// as sandboxd's user then, which owner() also says).
func sysProcAttr(noNet bool) *syscall.SysProcAttr {
	flags := uintptr(unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS)
	if noNet {
		flags |= unix.CLONE_NEWNET
	}
	attr := &syscall.SysProcAttr{Cloneflags: flags, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if uid := os.Geteuid(); uid != 0 {
		attr.Cloneflags |= unix.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getegid(), HostID: os.Getegid(), Size: 1}}
		attr.GidMappingsEnableSetgroups = false
	}
	return attr
}

// lastLines is the end of b, for a message.
func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
