//go:build linux

package inside

import (
	"encoding/json"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// forwarded are the signals the helper, as the run's init, passes on to the
// command's process group: what a terminal, a supervisor or sandboxd's
// drain sends. Every other signal from inside the namespace is dropped by
// the kernel (an init without a handler), SIGKILL from outside ends the
// whole run.
var forwarded = []os.Signal{unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGTERM, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH}

// supervise starts the command and stays PID 1 of the run's pid namespace,
// as a real init: it forwards signals to the command, reaps every orphan
// that is reparented to it, and when the command ends kills and reaps
// whatever the command left behind (endRest), reports the command's own
// status on the status pipe and exits with it. The command is not PID 1, so it dies
// of its own signals (`kill -9 $$` is 137, as outside) and its orphans do
// not pile up as zombies.
//
// It runs on the thread that built the sandbox (Init locks it): the command
// is forked from it and inherits its credentials, empty capability sets,
// securebits, Landlock domain and seccomp filter.
//
// It serves the seccomp filter's listener (notify_linux.go) for as long as
// the command runs, and reports what it refused with the command's end.
//
// sigs carries the forwarded signals, taken since the configuration
// arrived (parked before, see park).
func supervise(status *os.File, path string, cfg *Config, listener int, sigs <-chan os.Signal) int {
	// The helper keeps the command's uid: not dumpable, its memory and
	// /proc/1 stay out of the command's reach (execve makes the command
	// dumpable again).
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "moat: init: not dumpable: %v\n", err)
		return ExitCannotExec
	}
	sup, err := superviseSeccomp(listener, cfg.Seccomp, status)
	if err != nil {
		// Unserved, the filter would leave a refused call waiting.
		fmt.Fprintf(os.Stderr, "moat: init: seccomp supervisor: %v\n", err)
		return ExitCannotExec
	}
	pid, err := syscall.ForkExec(path, cfg.Argv, &syscall.ProcAttr{Env: cfg.Env, Files: []uintptr{0, 1, 2},
		Sys: &syscall.SysProcAttr{Setpgid: true}})
	if err != nil {
		sup.stop()
		fmt.Fprintf(os.Stderr, "moat: %s: %v\n", cfg.Argv[0], err)
		if err == syscall.ENOENT {
			return ExitNotFound
		}
		return ExitCannotExec
	}
	os.Stdin.Close() // the command's alone: its end of the pipe closes with it
	exited := make(chan *Exit, 1)
	go reap(pid, exited)
	for {
		select {
		case s := <-sigs:
			// From this thread: it is in the command's Landlock domain,
			// which scopes signals (another thread may hold a domain of its
			// own). Its group, as a terminal does; a command that left its
			// group still gets it itself.
			if unix.Kill(-pid, s.(syscall.Signal)) != nil {
				unix.Kill(pid, s.(syscall.Signal))
			}
		case ex := <-exited:
			ex.Refused = sup.stop()
			ex.Alone = endRest()
			json.NewEncoder(status).Encode(Status{Exit: ex})
			return ex.Code
		}
	}
}

// reap waits for every child the init has — the command and each orphan
// the kernel hands it — and sends the command's end on exited.
func reap(pid int, exited chan<- *Exit) {
	for {
		var ws unix.WaitStatus
		var ru unix.Rusage
		got, err := unix.Wait4(-1, &ws, 0, &ru)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "moat: init: wait for the command: %v\n", err)
			exited <- &Exit{Code: ExitCannotExec}
			return
		}
		if got != pid || !(ws.Exited() || ws.Signaled()) {
			continue // an orphan reaped, or a stop
		}
		ex := &Exit{Code: ws.ExitStatus(), Usage: Usage{MaxRSSBytes: int64(ru.Maxrss) * 1024,
			UserUS: ru.Utime.Nano() / 1000, SysUS: ru.Stime.Nano() / 1000}}
		if ws.Signaled() {
			ex.Signal = int(ws.Signal())
			ex.Code = 128 + ex.Signal
		}
		exited <- ex
		return
	}
}

// endRest ends what the command left in the namespace — background jobs,
// daemons, a session of their own — before the report, rather than by
// the init's own exit: SIGKILL to every other process (kill(-1) spares
// only the init), what has died reaped without waiting, again until
// kill(-1) finds none (a zombie still counts). Then the init closes its
// standard output and error, so sandboxd's readers of the command's output
// reach its end. It is true when the init is alone. It is false, having
// closed nothing, when kill(-1) fails or the rest is still there after
// endRestFor (kill(-1) returns 0 even when a process refused the signal):
// the init's exit then ends the rest, as the kernel does for a pid
// namespace's init, and sandboxd waits for that exit.
func endRest() bool {
	deadline := time.Now().Add(endRestFor)
	for {
		switch err := unix.Kill(-1, unix.SIGKILL); err {
		case unix.ESRCH:
			unix.Close(1)
			unix.Close(2)
			return true
		case nil:
		default:
			return false
		}
		reaped := false
		for {
			pid, err := unix.Wait4(-1, nil, unix.WALL|unix.WNOHANG, nil)
			if err == unix.EINTR {
				continue
			}
			if err != nil || pid <= 0 {
				break
			}
			reaped = true
		}
		if time.Now().After(deadline) {
			return false
		}
		if !reaped {
			// Dying, or not yet handed to the init (a parent dying too).
			unix.Nanosleep(&unix.Timespec{Nsec: 50_000}, nil)
		}
	}
}

// endRestFor bounds endRest: past it the init stops trying and exits.
const endRestFor = 100 * time.Millisecond
