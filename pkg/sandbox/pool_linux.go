//go:build linux

package sandbox

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/moatsec/moat/pkg/sandbox/inside"
	"github.com/moatsec/moat/pkg/wire"
	"golang.org/x/sys/unix"
)

// helper is a started sandbox helper: in its namespaces, waiting for its
// configuration on cfg. Its standard streams are pipes the run attaches to.
type helperProc struct {
	cmd    *exec.Cmd
	cfg    *os.File // write the configuration, then close
	status *os.File // the helper's reports, one JSON value each
	report *json.Decoder
	stdin  *os.File
	stdout *os.File
	stderr *os.File
	noNet  bool
	cg     *cgroup       // its run's group, which it joined as it started
	idle   bool          // at SCHED_IDLE: wake before its run
	exited chan struct{} // closed once the helper has exited and been reaped
	err    error         // cmd.Wait's error, once exited is closed
}

// spawn starts a helper in fresh namespaces (with a network namespace when
// noNet) and the cgroup of its run, with no limits yet (see cgroup.limit).
// It does nothing until it reads its configuration. An idle one (a pool's
// refill) runs at SCHED_IDLE once started, taking only CPU no run wants
// (see priority_linux.go).
func spawn(noNet, idle bool) (*helperProc, error) {
	pre, err := prelude()
	if err != nil {
		return nil, refuse("seccomp: %v", err)
	}
	return spawnWith(noNet, idle, pre)
}

// prelude is what every helper reads first (inside.Prelude), encoded once.
var prelude = sync.OnceValues(func() ([]byte, error) {
	var p inside.Prelude
	var err error
	if p.Net, err = seccompFor(false); err != nil {
		return nil, err
	}
	if p.NoNet, err = seccompFor(true); err != nil {
		return nil, err
	}
	return json.Marshal(&p)
})

// spawnWith is spawn handing the helper pre as its prelude.
func spawnWith(noNet, idle bool, pre []byte) (*helperProc, error) {
	exe, err := helperPath()
	if err != nil {
		return nil, err
	}
	cg, err := makeCgroup()
	if err != nil {
		return nil, refuse("cgroup: %v", err)
	}
	h := &helperProc{noNet: noNet, cg: cg}
	var child []*os.File // the ends the helper keeps
	pipe := func(parentReads bool) (*os.File, error) {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		if parentReads {
			child = append(child, w)
			return r, nil
		}
		child = append(child, r)
		return w, nil
	}
	if h.cfg, err = pipe(false); err == nil {
		if h.status, err = pipe(true); err == nil {
			if h.stdin, err = pipe(false); err == nil {
				if h.stdout, err = pipe(true); err == nil {
					h.stderr, err = pipe(true)
				}
			}
		}
	}
	defer func() {
		for _, f := range child {
			f.Close()
		}
	}()
	if err != nil {
		h.release()
		return nil, refuse("pipes for the sandbox helper: %v", err)
	}
	cmd := exec.Command(exe)
	// The helper joins its group as it starts, and brings up loopback in
	// its own network namespace: its arguments say so (see inside.Arg0).
	args := []string{inside.Arg0}
	if noNet {
		args = append(args, inside.OwnNetArg)
	}
	cmd.Args, cmd.Env, cmd.Dir = append(args, cg.joinFiles()...), helperEnv, "/"
	// child: cfg read end, status write end, stdin read end, stdout and stderr write ends.
	cmd.ExtraFiles = []*os.File{child[0], child[1]}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = child[2], child[3], child[4]
	cmd.SysProcAttr = sysProcAttr(noNet)
	// Pdeathsig fires when the thread that forked exits: keep it to this
	// goroutine's thread while starting (Go parks, never ends, such threads).
	runtime.LockOSThread()
	err = cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		h.release()
		return nil, refuse("start the sandbox helper: %v", err)
	}
	h.cmd = cmd
	spawned.Add(1)
	if idle {
		h.lower()
	}
	h.exited = make(chan struct{})
	go func() { h.err = cmd.Wait(); close(h.exited) }()
	// Within a pipe's buffer (~8 KB) it waits there for the helper; a
	// longer one (a test's) is read by the helper as it starts.
	if _, err := h.cfg.Write(pre); err != nil {
		h.kill()
		return nil, refuse("hand the sandbox helper its seccomp filters: %v", err)
	}
	return h, nil
}

// wait waits for the helper to exit and returns cmd.Wait's error.
func (h *helperProc) wait() error {
	<-h.exited
	return h.err
}

func (h *helperProc) close() {
	for _, f := range []*os.File{h.cfg, h.status, h.stdin, h.stdout, h.stderr} {
		if f != nil {
			f.Close()
		}
	}
}

// release closes what is left of a helper that has exited or never
// started: its pipes, and its group, with anything still in it.
func (h *helperProc) release() {
	h.close()
	h.cg.remove()
}

// kill ends a helper that will not be used, and removes its group.
func (h *helperProc) kill() {
	h.cmd.Process.Kill()
	h.wait()
	h.release()
}

// pool keeps helpers started ahead of requests — the namespaces made, the
// Go runtime of the helper up — so a run pays only for its own setup. Each
// helper serves one run. Off unless EnablePool is called (sandboxd does;
// one-shot `sandboxd exec` does not).
var pool struct {
	mu   sync.Mutex
	size int
	idle map[bool][]*helperProc // by noNet
	// coming counts the refills starting a helper now, by noNet: the
	// pool is short only of what is neither idle nor coming.
	coming map[bool]int
	// failed is why the latest refill could not start a helper (nil once
	// one starts): runs then spawn their own, and a test waiting for the
	// pool can say why it stays empty.
	failed error
}

// spawned counts the helpers this process has started (the pool's tests
// weigh refills against runs with it).
var spawned atomic.Int64

// EnablePool keeps n idle helpers of each kind (with and without a network
// namespace) ready. Turned on, it first removes the groups a sandboxd that
// is gone left behind (sweepGroups); turned off (n 0, as sandboxd does when
// it stops), it ends the helpers waiting in the pool and removes their
// groups, and waits for the helpers of answered runs to finish (Settle).
func EnablePool(n int) {
	if n > 0 {
		sweepGroups()
	}
	pool.mu.Lock()
	pool.size = n
	if pool.idle == nil {
		pool.idle, pool.coming = map[bool][]*helperProc{}, map[bool]int{}
	}
	var extra []*helperProc
	for noNet, l := range pool.idle {
		if len(l) > n {
			extra = append(extra, l[n:]...)
			pool.idle[noNet] = l[:n:n]
		}
	}
	pool.mu.Unlock()
	for _, h := range extra {
		h.kill()
	}
	if n == 0 {
		Settle()
	}
	for _, noNet := range []bool{true, false} {
		go refill(noNet)
	}
}

// take returns a ready helper (pooled true), or spawns one when the pool is
// empty or off.
func take(noNet bool) (h *helperProc, pooled bool, err error) {
	pool.mu.Lock()
	if l := pool.idle[noNet]; len(l) > 0 {
		// The oldest first: it has had the longest to get ready.
		h, pool.idle[noNet] = l[0], l[1:]
	}
	size := pool.size
	pool.mu.Unlock()
	if size > 0 {
		go refill(noNet)
	}
	if h != nil && h.alive() && h.wake() == nil {
		return h, true, nil
	}
	if h != nil {
		h.kill()
	}
	h, err = spawn(noNet, false)
	return h, false, err
}

// begin hands the helper its configuration and reads its report: the
// mechanisms in force when it executed the command, or why it could not.
// On error the helper is gone.
func (h *helperProc) begin(cfg *inside.Config) (inside.Status, error) {
	var st inside.Status
	fail := func(err error) (inside.Status, error) {
		h.cmd.Process.Kill()
		h.wait()
		return st, err
	}
	if err := json.NewEncoder(h.cfg).Encode(cfg); err != nil {
		return fail(refuse("hand the helper its configuration: %v", err))
	}
	h.cfg.Close()
	h.report = json.NewDecoder(h.status)
	if err := h.report.Decode(&st); err != nil && err != io.EOF { // EOF: the helper died
		return fail(refuse("garbled helper status: %v", err))
	}
	if st.Error != "" {
		return fail(refuse("%s", st.Error))
	}
	if st.Isolation == nil {
		h.wait()
		errOut, _ := io.ReadAll(io.LimitReader(h.stderr, 4096))
		return st, refuse("the sandbox helper died before running the command (%v): %s", h.cmd.ProcessState, lastLines(errOut, 5))
	}
	return st, nil
}

// ending is how the command ended, as outcome read it.
type ending struct {
	code    int
	signal  string
	usage   wire.Usage
	refused []wire.SyscallDenial
	// alone: the init reported the command's end having ended everything
	// else in its namespace (inside.Exit.Alone); it exits next, on its own.
	alone bool
}

// outcome is how the command ended: its init's report, or, when the init
// itself was killed (a timeout, a limit, a cancel) or the command never
// started, the helper's own status once it has exited; and the system
// calls the seccomp filter refused, as the init last reported them. It
// reads the status pipe to its end or to the command's, so it returns by
// the time the helper has exited.
func (h *helperProc) outcome() ending {
	var e ending
	for {
		var st inside.Status
		if h.report.Decode(&st) != nil {
			break
		}
		if st.Refused != nil && len(e.refused) < wire.MaxSyscallDenials {
			e.refused = append(e.refused, wire.SyscallDenial(*st.Refused))
		}
		if x := st.Exit; x != nil {
			if x.Signal != 0 {
				e.signal = unix.SignalName(syscall.Signal(x.Signal))
			}
			e.refused = nil
			for _, d := range x.Refused {
				e.refused = append(e.refused, wire.SyscallDenial(d))
			}
			e.code, e.usage, e.alone = x.Code, wire.Usage(x.Usage), x.Alone
			return e
		}
	}
	<-h.exited
	ws := h.cmd.ProcessState.Sys().(syscall.WaitStatus)
	e.code = ws.ExitStatus()
	if ws.Signaled() {
		e.signal, e.code = unix.SignalName(ws.Signal()), 128+int(ws.Signal())
	}
	if ru, ok := h.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		e.usage = wire.Usage{MaxRSSBytes: int64(ru.Maxrss) * 1024, UserUS: ru.Utime.Nano() / 1000, SysUS: ru.Stime.Nano() / 1000}
	}
	return e
}

// signal passes sig to the helper, which forwards it to the command.
func (h *helperProc) signal(sig os.Signal) { h.cmd.Process.Signal(sig) }

// refill tops the pool up. Each take starts one, so several may run at
// once: between them they start only what the pool is short of, counting
// the helpers the others are starting, so none is started to be thrown
// away (each costs namespaces, a cgroup and a Go runtime's start).
func refill(noNet bool) {
	for {
		pool.mu.Lock()
		if pool.size-len(pool.idle[noNet])-pool.coming[noNet] <= 0 {
			pool.mu.Unlock()
			return
		}
		pool.coming[noNet]++
		pool.mu.Unlock()
		h, err := spawn(noNet, true)
		pool.mu.Lock()
		pool.coming[noNet]--
		keep := err == nil && len(pool.idle[noNet]) < pool.size // the pool may have shrunk meanwhile
		pool.failed = err
		if keep {
			pool.idle[noNet] = append(pool.idle[noNet], h)
		}
		pool.mu.Unlock()
		if err != nil {
			return // runs spawn their own; the next take tries again
		}
		if !keep {
			h.kill()
			return
		}
	}
}

// alive reports whether an idle helper is still there to take a run.
func (h *helperProc) alive() bool {
	select {
	case <-h.exited:
		return false
	default:
		return true
	}
}

// attach copies the helper's output into the run's buffers; wait ends when
// every writer (the command and whatever it left) has closed them.
func (h *helperProc) attach(stdin []byte, stdout, stderr io.Writer) (wait func()) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); io.Copy(stdout, h.stdout) }()
	go func() { defer wg.Done(); io.Copy(stderr, h.stderr) }()
	go func() {
		if len(stdin) > 0 {
			h.stdin.Write(stdin)
		}
		h.stdin.Close()
	}()
	return wg.Wait
}

// helperEnv is the helper's own environment (the command gets the run's,
// never this one). One P: the helper does one thing at a time, and a
// second P only adds spinning threads and wake-ups to every run.
var helperEnv = []string{"GOMAXPROCS=1"}
