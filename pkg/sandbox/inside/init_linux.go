//go:build linux

package inside

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// A helper's main goroutine runs on the process's first thread, the one
// the kernel judges the process's signal mask by (see unblockOnLeader):
// locked there in an init, before main can move.
func init() {
	if len(os.Args) > 0 && os.Args[0] == Arg0 {
		runtime.LockOSThread()
	}
}

// Main turns this process into the sandbox helper when it was started as
// one (argv[0] is [Arg0]) and never returns then; otherwise it returns at
// once. cmd/moat-sandbox-helper's main is Main; a test binary that is its
// own helper calls it through sandbox.Init.
func Main() {
	if len(os.Args) == 0 || os.Args[0] != Arg0 {
		return
	}
	// Credentials, securebits and the seccomp filter that execve passes on
	// are those of the calling thread: stay on one.
	runtime.LockOSThread()
	status := os.NewFile(StatusFD, "status")
	unix.CloseOnExec(StatusFD)
	args, ownNet := os.Args[1:], false
	if len(args) > 0 && args[0] == OwnNetArg {
		args, ownNet = args[1:], true
	}
	pre := prepare(ownNet, args)
	code, err := helper(status, pre)
	if err != nil {
		json.NewEncoder(status).Encode(Status{Error: err.Error()})
	}
	os.Exit(code)
}

// helper builds the sandbox around itself, starts the command and stays
// its init (see supervise). It returns the helper's exit status: 125 with an
// error for the parent when the sandbox could not be built, 126/127 for a
// command that could not be executed, else the command's own.
//
// pre.err is why prepare failed (the helper could not join its cgroup,
// bring up its loopback, lock what execve may gain or read the prelude), if
// it did: the configuration is read first, so sandboxd hears why.
func helper(status *os.File, pre *prepared) (int, error) {
	var cfg Config
	if err := pre.config.Decode(&cfg); err != nil {
		return 125, fmt.Errorf("read the sandbox configuration: %v", err)
	}
	pre.file.Close()
	// From here the forwarded signals are taken (see park): sandboxd
	// forwards a caller's only once the sandbox is built.
	if err := pre.sigs.unpark(); err != nil && pre.err == nil {
		pre.err = err
	}
	cfg.Seccomp = pre.filters.Net
	if cfg.NoNet {
		cfg.Seccomp = pre.filters.NoNet
	}
	var applied []string
	ns := "namespaces:mnt,pid,ipc,uts"
	if cfg.NoNet || cfg.Egress {
		ns += ",net"
	}
	if cfg.UserNS {
		ns += ",user"
	}
	applied = append(applied, ns)
	if pre.err != nil {
		return 125, pre.err
	}
	if own := cfg.NoNet || cfg.Egress; own != pre.ownNet {
		// The configuration's network is not the one the helper was
		// started in: fail closed rather than run in the wrong one.
		return 125, fmt.Errorf("network namespace: the run wants its own (%t), the helper was started with its own (%t)", own, pre.ownNet)
	}
	if err := unix.Sethostname([]byte("moat")); err != nil {
		return 125, fmt.Errorf("uts namespace: %v", err)
	}
	m, err := buildMounts(&cfg)
	if err != nil {
		return 125, err
	}
	applied = append(applied, m...)
	if cfg.Egress {
		if err := resolvConf(); err != nil {
			return 125, err
		}
		applied = append(applied, fmt.Sprintf("net:egress-proxy 127.0.0.1:%d,dns 127.0.0.1:53", ProxyPort))
	}
	if err := setRlimits(&cfg); err != nil {
		return 125, err
	}
	applied = append(applied, "rlimits:fsize,cpu,core")
	// Look the program up as the sandbox sees it, before privileges go.
	path, lookErr := lookPath(cfg.Argv[0], cfg.Env, cfg.Dir)
	if err := os.Chdir(cfg.Dir); err != nil {
		return 125, fmt.Errorf("working directory %s: %v", cfg.Dir, err)
	}
	if err := dropPrivileges(cfg.UID, cfg.GID); err != nil {
		return 125, err
	}
	applied = append(applied, fmt.Sprintf("uid:%d", cfg.UID), "caps:none")
	// Set on every thread while the helper waited (prepare).
	applied = append(applied, "no_new_privs")
	ll, err := restrictLandlock(&cfg)
	if err != nil {
		return 125, err
	}
	applied = append(applied, ll)
	// Nothing this process did not open itself reaches the command: every
	// descriptor past the status pipe closes at execve. (Closing them now
	// would pull the runtime's own epoll descriptor from under it.)
	if err := unix.CloseRange(StatusFD+1, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return 125, fmt.Errorf("close inherited descriptors: %v", err)
	}
	applied = append(applied, "fds:closed")
	// The filter goes on last, and before the report: the report lists only
	// what is in force.
	listener, err := loadSeccomp(cfg.Seccomp)
	if err != nil {
		return 125, fmt.Errorf("seccomp: %v", err)
	}
	applied = append(applied, "seccomp", "init:pid1")
	if err := json.NewEncoder(status).Encode(Status{Isolation: applied}); err != nil {
		return 125, fmt.Errorf("report to sandboxd: %v", err)
	}
	// From here on, failures are the command's, not the sandbox's.
	if lookErr != nil {
		fmt.Fprintf(os.Stderr, "moat: %s: command not found\n", cfg.Argv[0])
		return ExitNotFound, nil
	}
	return supervise(status, path, &cfg, listener, pre.sigs.sigs), nil
}

// prepared is what the helper did before its configuration arrived.
type prepared struct {
	file    *os.File      // the configuration's pipe
	config  *json.Decoder // reads the configuration, after the prelude
	filters Prelude
	sigs    *parked // the forwarded signals, parked until the request
	ownNet  bool    // loopback is up in its own network namespace
	// err is why preparing failed (the helper could not join its cgroup,
	// bring up loopback, or lock what execve may gain), if it did: the
	// configuration is read first, so sandboxd hears why.
	err error
}

// prepare does, before the configuration is read, what every run would
// otherwise pay for after its request reached sandboxd: a pooled helper
// waits for its configuration at idle priority, so work done here costs a
// run no time. It joins the run's cgroup by writing "0" to each of
// cgroupFiles (see Arg0), brings loopback up in its network namespace when
// it has one of its own (ownNet), empties the bounding and ambient
// capability sets and locks the securebits of the thread the command will
// be started from (lockExec), sets no_new_privs on every thread, parks the
// signals the init forwards until its configuration arrives (see park and
// supervise; the runtime's signal goroutines and their thread are started
// here), reads the prelude (the seccomp filters), and builds
// encoding/json's per-type caches for the configuration and the reports,
// by decoding and encoding one of each.
//
// A forwarded signal that arrives while the sandbox is being built waits
// in the channel and reaches the command once it has started (an init
// without a handler would have dropped it); one sent before the
// configuration arrived is discarded by the kernel.
func prepare(ownNet bool, cgroupFiles []string) *prepared {
	p := &prepared{file: os.NewFile(ConfigFD, "config"), ownNet: ownNet}
	for _, f := range cgroupFiles {
		if err := os.WriteFile(f, []byte("0"), 0o644); err != nil {
			p.err = fmt.Errorf("join cgroup %s: %v", filepath.Dir(f), err)
			break
		}
	}
	if p.err == nil && ownNet {
		if err := LoopbackUp(); err != nil {
			p.err = fmt.Errorf("network namespace: %v", err)
		}
	}
	if p.err == nil {
		p.err = lockExec()
	}
	// no_new_privs on every thread (Landlock is enforced on each, see
	// allThreads): nothing the helper does before the command's execve
	// executes anything, so it costs a run nothing to set it here.
	if p.err == nil {
		if err := allThreads(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0); err != nil {
			p.err = fmt.Errorf("no_new_privs: %v", err)
		}
	}
	// While it waits for its run the helper takes no forwarded signal: the
	// kernel discards them (one then was meant for no run). See park.
	var err error
	if p.sigs, err = park(); err != nil && p.err == nil {
		p.err = err
	}
	p.config = json.NewDecoder(p.file)
	if err := p.config.Decode(&p.filters); err != nil && p.err == nil {
		p.err = fmt.Errorf("read the seccomp filters sandboxd hands over first: %v", err)
	}
	var cfg Config
	json.Unmarshal(warmConfig, &cfg)
	json.NewEncoder(io.Discard).Encode(Status{Isolation: []string{""}, Refused: &SyscallDenial{}, Exit: &Exit{Refused: []SyscallDenial{{}}}})
	return p
}

// warmConfig is a configuration with every field and nested type set, for
// prepare's decoding.
var warmConfig = []byte(`{"argv":[""],"env":[""],"dir":"","uid":0,"gid":0,"no_net":false,"egress":false,"user_ns":false,"trusted":false,"tmp_bytes":0,"placeholders":[""],` +
	`"profile":{"workspace":"","fs":{"write":[""],"read_deny":[""],"write_deny":[""],"read":[""]},"net":{"mode":"","ports":[1]},"limits":{"cpu_ms":0,"file_bytes":0}}}`)

// lookPath finds argv0 in the sandbox's PATH (relative names from dir).
func lookPath(argv0 string, env []string, dir string) (string, error) {
	if strings.Contains(argv0, "/") {
		if !filepath.IsAbs(argv0) {
			argv0 = filepath.Join(dir, argv0)
		}
		return argv0, nil
	}
	pathVar := DefaultPath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathVar = v
		}
	}
	for _, d := range filepath.SplitList(pathVar) {
		if d == "" {
			d = "."
		}
		if !filepath.IsAbs(d) {
			d = filepath.Join(dir, d)
		}
		p := filepath.Join(d, argv0)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

func setRlimits(cfg *Config) error {
	l := cfg.Profile.Limits
	cpuSec := uint64((l.CPUMS + 999) / 1000)
	for _, r := range []struct {
		res      int
		cur, max uint64
		what     string
	}{
		{unix.RLIMIT_FSIZE, uint64(l.FileBytes), uint64(l.FileBytes), "file size"},
		{unix.RLIMIT_CPU, cpuSec, cpuSec + 1, "cpu time"},
		{unix.RLIMIT_CORE, 0, 0, "core dumps"},
	} {
		if err := unix.Setrlimit(r.res, &unix.Rlimit{Cur: r.cur, Max: r.max}); err != nil {
			return fmt.Errorf("rlimit %s: %v", r.what, err)
		}
	}
	return nil
}

// LoopbackUp brings lo up in the fresh network namespace, so a command can
// talk to itself on 127.0.0.1 (TCP is still refused by seccomp and Landlock
// in an offline profile; this serves unix-socket-free local tooling).
func LoopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
