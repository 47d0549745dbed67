package testbin

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Proc is a started child process: what it writes is kept for failure
// messages, and Done is closed once it has exited (Err is set then).
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	Done chan struct{}
	Err  error
	out  Output
}

// Command is bin from dir with args, in a process group of its own (so Kill
// reaches its children) and killed with the test binary.
func Command(dir, bin string, args ...string) *exec.Cmd {
	path := bin
	if !filepath.IsAbs(bin) {
		path = filepath.Join(dir, bin)
	}
	c := exec.Command(path, args...)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return c
}

// Start starts c under name, keeping its standard output and error where
// c sets neither, and waits for it in the background.
func Start(name string, c *exec.Cmd) (*Proc, error) {
	p := &Proc{Name: name, Cmd: c, Done: make(chan struct{})}
	if c.Stdout == nil {
		c.Stdout = p
	}
	if c.Stderr == nil {
		c.Stderr = p
	}
	if err := c.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { p.Err = c.Wait(); close(p.Done) }()
	return p, nil
}

func (p *Proc) Write(b []byte) (int, error) { return p.out.Write(b) }

// Output is everything the process wrote so far.
func (p *Proc) Output() string { return p.out.String() }

// Signal sends sig to the process itself (not its group: a daemon's
// children are its own business) and waits up to within for it to exit.
func (p *Proc) Signal(sig syscall.Signal, within time.Duration) error {
	p.Cmd.Process.Signal(sig)
	select {
	case <-p.Done:
		return nil
	case <-time.After(within):
		return fmt.Errorf("%s still running %s after %v", p.Name, within, sig)
	}
}

// Kill SIGKILLs the whole process group and waits for the process.
func (p *Proc) Kill() {
	syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	<-p.Done
}
