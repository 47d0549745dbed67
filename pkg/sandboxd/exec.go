package sandboxd

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/profile"
	"github.com/moatsec/moat/pkg/sandbox"
	"github.com/moatsec/moat/pkg/wire"
)

// Exec is `sandboxd exec`: one command under the same isolation as a run,
// with the profile resolved locally and no bus and no policy — the tool for
// testing and benchmarking the sandbox alone. Signals from signals are
// passed on to the command. It returns the exit status.
func Exec(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, signals <-chan os.Signal) int {
	fs := flag.NewFlagSet("sandboxd exec", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("profile", "", "profile name or alias (default offline)")
	ws := fs.String("workspace", "", "workspace directory (default the current directory)")
	cwd := fs.String("cwd", "", "working directory inside the workspace")
	timeout := fs.Duration("timeout", 0, "lower the profile's timeout")
	asJSON := fs.Bool("json", false, "print the result as JSON instead of the output")
	allowTrusted := fs.Bool("allow-trusted", false, "allow the trusted profile")
	readStdin := fs.Bool("stdin", false, "pass this process's standard input to the command")
	var env envFlag
	fs.Var(&env, "env", "NAME=VALUE for the command (repeatable; credentials are dropped)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "sandboxd exec: give the command after --, e.g. sandboxd exec --profile offline -- ls")
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "sandboxd exec:", err)
		return wire.ExitSandboxFailure
	}
	h, err := home.FromEnv()
	if err != nil {
		return fail(err)
	}
	workspace, err := absDir(*ws)
	if err != nil {
		return fail(err)
	}
	r, err := profile.NewResolver(profile.Options{MoatHome: h.Dir, ProfilesFile: h.ProfilesFile(), AllowTrusted: *allowTrusted})
	if err != nil {
		return fail(err)
	}
	dir := *cwd
	if dir != "" {
		dir, _ = filepath.Abs(dir)
	}
	p, err := r.Resolve(&wire.ResolveRequest{Profile: *name, Workspace: workspace, Cwd: dir})
	if err != nil {
		return fail(err)
	}
	spec := &sandbox.Spec{Argv: fs.Args(), Profile: p, Env: sandbox.Pass(p, os.Environ()), Timeout: *timeout, Signals: signals}
	for k, v := range env {
		spec.Env[k] = v
	}
	if *readStdin {
		if spec.Stdin, err = io.ReadAll(stdin); err != nil {
			return fail(err)
		}
	}
	if !*asJSON {
		spec.Stdout, spec.Stderr = stdout, stderr
	}
	res, err := sandbox.Run(ctx, spec)
	// The run's helper exits after the answer; its group goes with it
	// before this process does.
	defer sandbox.Settle()
	if err != nil {
		return fail(err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(&wire.RunResult{ExitCode: res.ExitCode, Signal: res.Signal, TimedOut: res.TimedOut,
			Stdout: res.Stdout, Stderr: res.Stderr, StdoutTruncated: res.StdoutTruncated, StderrTruncated: res.StderrTruncated,
			DurationUS: res.Duration.Microseconds(), Usage: res.Usage, Isolation: res.Isolation, Quarantined: res.Quarantined,
			NetDenied: netDenied(res.NetDenied), SyscallsDenied: res.Syscalls, PathsDenied: res.Paths})
		sandbox.ReportQuarantine(stderr, res.Quarantined) // the live output has had it
	} else {
		explain(stderr, res, p.Name)
	}
	return res.ExitCode
}

// explain tells, on stderr, why a run ended the way it did when the exit
// status alone does not.
func explain(w io.Writer, res *sandbox.Result, profile string) {
	if res.ExitCode != 0 || res.Signal != "" {
		for _, d := range res.Syscalls {
			fmt.Fprintf(w, "moat: %s\n", d.Line("profile "+profile))
		}
		for _, d := range res.Paths {
			fmt.Fprintf(w, "moat: %s\n", d.Line("profile "+profile))
		}
	}
	switch {
	case res.TimedOut:
		fmt.Fprintf(w, "moat: killed after %s: the timeout\n", res.Duration.Round(time.Millisecond))
	case res.OOMKilled:
		fmt.Fprintln(w, "moat: killed: out of memory (the profile's memory limit)")
	case res.CPUExceeded:
		fmt.Fprintln(w, "moat: killed: the profile's CPU time limit")
	}
	if res.StdoutTruncated || res.StderrTruncated {
		fmt.Fprintln(w, "moat: output truncated at the profile's limit")
	}
}

func absDir(dir string) (string, error) {
	if dir == "" {
		return os.Getwd()
	}
	return filepath.Abs(dir)
}

// envFlag collects NAME=VALUE pairs.
type envFlag map[string]string

func (e *envFlag) String() string { return "" }
func (e *envFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return errors.New("want NAME=VALUE")
	}
	if *e == nil {
		*e = envFlag{}
	}
	(*e)[k] = val
	return nil
}
