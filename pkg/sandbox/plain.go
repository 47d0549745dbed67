//go:build !linux

package sandbox

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"syscall"
	"time"
)

// Init does nothing outside Linux: there is no re-executed helper.
func Init() {}

// EnablePool does nothing outside Linux: there are no helpers to keep.
func EnablePool(int) {}

// Settle has nothing to wait for outside Linux: a run ends with its process.
func Settle() {}

// FindHelper has nothing to find outside Linux: there is no helper.
func FindHelper() error { return nil }

// runWrapped runs the command, prefixed by wrapper (sandbox-exec on macOS,
// nothing for trusted elsewhere), with the timeout, output caps and a
// reduced environment; the whole process group is killed at the timeout.
func runWrapped(ctx context.Context, spec *Spec, wrapper []string, isolation []string) (*Result, error) {
	home, name := "/", ""
	if u, err := user.Current(); err == nil {
		home, name = u.HomeDir, u.Username
	}
	argv := append(append([]string{}, wrapper...), spec.Argv...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = spec.Dir
	cmd.Env = Environ(spec.Profile, spec.Env, home, name)
	limits := spec.Profile.Limits
	stdout := &capped{max: int(limits.OutputBytes), live: spec.Stdout}
	stderr := &capped{max: int(limits.OutputBytes), live: spec.Stderr}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if len(spec.Stdin) > 0 {
		cmd.Stdin = bytes.NewReader(spec.Stdin)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) || errors.Is(err, exec.ErrNotFound) {
			return &Result{ExitCode: ExitNotFound, Stderr: []byte(err.Error() + "\n"), Isolation: isolation}, nil
		}
		return nil, refuse("start: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	res := &Result{Isolation: isolation}
	timer := time.NewTimer(spec.timeout())
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		res.TimedOut = true
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	case <-ctx.Done():
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // nothing outlives the run
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		res.Signal = ws.Signal().String()
		res.ExitCode = 128 + int(ws.Signal())
	} else {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	res.Duration = time.Since(start)
	res.Stdout, res.StdoutTruncated = stdout.result()
	res.Stderr, res.StderrTruncated = stderr.result()
	return res, nil
}
