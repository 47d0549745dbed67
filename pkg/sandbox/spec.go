package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/moatsec/moat/pkg/egress"
	"github.com/moatsec/moat/pkg/sandbox/inside"
	"github.com/moatsec/moat/pkg/wire"
)

// Spec is one command to run.
type Spec struct {
	Argv    []string
	Profile *wire.Profile     // resolved: paths absolute, limits set
	Dir     string            // working directory; default the profile's cwd
	Env     map[string]string // the request's variables, filtered by [Environ]
	Stdin   []byte
	Timeout time.Duration // lowers the profile's timeout when set
	// Stdout and Stderr, when set, also receive the output live (up to the caps).
	Stdout, Stderr io.Writer
	// Net reaches into the run's egress proxy (see net.go); zero is production.
	Net NetHooks
	// NetRules are the rules files' network_rule entries policyd sent with
	// its allow: the egress proxy adds them to the profile's lists. A
	// profile without network (or trusted) has no proxy: they grant nothing.
	NetRules []wire.NetRule
	// Signals, when set, are passed on to the command's process group as
	// they come (its init forwards SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1,
	// SIGUSR2 and SIGWINCH; others are dropped).
	Signals <-chan os.Signal
	// Quarantine is where the check after the run moves what it finds;
	// default MOAT_HOME/quarantine.
	Quarantine string
}

// Result is what happened.
type Result struct {
	ExitCode        int
	Signal          string
	TimedOut        bool
	OOMKilled       bool
	CPUExceeded     bool
	PidsLimited     bool // the pids limit refused a fork (cgroup pids.events max)
	Stdout, Stderr  []byte
	StdoutTruncated bool
	StderrTruncated bool
	Duration        time.Duration
	Usage           wire.Usage
	Isolation       []string // mechanisms applied, for the record
	// Quarantined is what the check after the run moved out of the
	// workspace (see docs/sandbox.md, "After the run").
	Quarantined []wire.Quarantined
	// NetDenied lists the destinations the egress proxy refused.
	NetDenied []egress.Denial
	// Syscalls lists the system calls the seccomp filter refused, by kind
	// (docs/sandbox.md, "Refused system calls").
	Syscalls []wire.SyscallDenial
	// Paths lists what a failed command's stderr named that the profile's
	// filesystem rules refuse (pathdeny_linux.go).
	Paths []wire.PathDenial
}

// Exit codes the sandbox itself gives a command that could not run.
const (
	ExitNotFound   = inside.ExitNotFound
	ExitCannotExec = inside.ExitCannotExec
)

// ErrRefused wraps every refusal to run: a missing kernel feature, a setup
// step that failed, a bad spec. The command did not start.
var ErrRefused = errors.New("sandbox refused to run the command")

func refuse(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, args...))
}

func (s *Spec) validate() error {
	switch {
	case len(s.Argv) == 0 || s.Argv[0] == "":
		return refuse("no command to run")
	case s.Profile == nil:
		return refuse("no profile")
	case s.Profile.Limits.TimeoutMS <= 0 || s.Profile.Limits.MemoryBytes <= 0 || s.Profile.Limits.Pids <= 0 || s.Profile.Limits.OutputBytes <= 0:
		return refuse("profile %s has unset limits: resolve it through profiled", s.Profile.Name)
	}
	for _, a := range s.Argv {
		for i := 0; i < len(a); i++ {
			if a[i] == 0 {
				return refuse("an argument contains a NUL byte")
			}
		}
	}
	if s.Dir == "" {
		s.Dir = s.Profile.Cwd
	}
	if s.Dir == "" {
		s.Dir = s.Profile.Workspace
	}
	return nil
}

// EffectiveTimeout is the wall-clock limit the run gets: the profile's, or
// the spec's when lower.
func (s *Spec) EffectiveTimeout() time.Duration { return s.timeout() }

// timeout is the effective wall-clock limit.
func (s *Spec) timeout() time.Duration {
	t := s.Profile.Limits.Timeout()
	if s.Timeout > 0 && s.Timeout < t {
		t = s.Timeout
	}
	return t
}

// trusted reports whether the profile drops filesystem and network restrictions.
func (s *Spec) trusted() bool { return s.Profile.Base == "trusted" }
