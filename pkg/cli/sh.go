package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/moatsec/moat/pkg/wire"
)

// Environment variables moat sh reads, since a program that runs a shell
// passes no flags of its own.
const (
	EnvProfile   = "MOAT_PROFILE"   // the profile (default offline)
	EnvWorkspace = "MOAT_WORKSPACE" // the workspace (default the current directory)
	EnvSession   = "MOAT_SESSION"   // a session id that groups runs in the audit trail (e.g. a CI job's)
)

// shStdinMax bounds the standard input moat sh forwards: the run request
// carries it whole (wire.MaxStdinBytes).
const shStdinMax = wire.MaxStdinBytes

// shUsage is moat sh's help.
const shUsage = `usage: moat sh [--profile P] [--workspace DIR] [--session ID] [--timeout D] [--json] [SHELL-OPTIONS] -c SCRIPT [NAME [ARG...]]
       moat sh [moat flags] [SHELL-OPTIONS] [FILE [ARG...]]   (no FILE: the script is read from standard input)

A drop-in for sh -c / bash -c: the script runs as bash -c SCRIPT through the
whole pipeline (resolved, judged, confined, recorded). Standard output and
error stay apart; the exit status is the script's, and a script killed by a
signal ends moat sh by the same signal; standard input is passed through
(when it is not a terminal; up to 4 MiB); the working directory is the
current one and the environment the caller's, credentials dropped.
A refusal exits 77 and says why on standard error (--json: the whole result).
Moat's own flags come first and use two dashes; env MOAT_PROFILE,
MOAT_WORKSPACE and MOAT_SESSION stand in for --profile, --workspace and --session.
`

func runSh(ctx context.Context, e *env, args []string) int {
	fs, js, opts := e.flags("sh", true)
	name := fs.String("profile", os.Getenv(EnvProfile), "profile name or alias (env MOAT_PROFILE; default offline)")
	ws := fs.String("workspace", os.Getenv(EnvWorkspace), "workspace directory (env MOAT_WORKSPACE; default the current directory)")
	timeout := fs.Duration("timeout", 0, "lower the profile's timeout")
	session := fs.String("session", os.Getenv(EnvSession), "session id that groups runs in the audit trail (env MOAT_SESSION)")
	fs.Usage = func() { fmt.Fprint(e.stderr, shUsage); fs.PrintDefaults() }
	// Moat's flags are the leading --words; the rest is the shell's.
	n := 0
	for n < len(args) && strings.HasPrefix(args[n], "--") && args[n] != "--" {
		if !strings.Contains(args[n], "=") && n+1 < len(args) && takesValue(args[n]) {
			n++
		}
		n++
	}
	if n < len(args) && args[n] == "-h" { // help, not bash's hashall
		fs.Usage()
		return ExitOK
	}
	if code, ok := Parse(fs, args[:n]); !ok {
		return code
	}
	argv, fromStdin, err := shellArgv(args[n:])
	if err != nil {
		fmt.Fprintf(e.stderr, "moat sh: %v\n", err)
		return ExitUsage
	}
	if err := wire.CheckID("session", *session); err != nil {
		fmt.Fprintf(e.stderr, "moat sh: %s\n", wire.Message(err))
		return ExitUsage
	}
	workspace, dir, err := workdirs(*ws, "")
	if err != nil {
		return e.fail(err)
	}
	req := &wire.RunRequest{SessionID: *session, Profile: *name, Workspace: workspace, Cwd: dir, Argv: argv,
		Env: callerEnv(os.Environ()), TimeoutMS: timeout.Milliseconds(), Stream: !*js}
	if req.Stdin, err = readStdin(os.Stdin, fromStdin); err != nil {
		return e.fail(err)
	}
	if fromStdin {
		req.Argv = append(req.Argv, string(req.Stdin))
		req.Stdin = nil
	}
	c, ok := e.dial(ctx, opts)
	if !ok {
		return wire.ExitSandboxFailure
	}
	defer c.Close()
	sigs := forwardSignals(ctx)
	defer sigs.release()
	res, err := c.RunSignaled(ctx, req, e.output, nil, sigs.ch)
	if err != nil {
		e.fail(err)
		return wire.ExitSandboxFailure
	}
	c.Explain(ctx, res.Refusal, CheckOf(req), nil)
	if *js {
		e.json(res)
	}
	if res.Decision != nil && res.Decision.Verdict != wire.VerdictAllow {
		if !*js {
			printRefusal(e.stderr, res.Refusal)
		}
		return wire.ExitDenied
	}
	if !*js {
		switch {
		case res.Cancelled:
			fmt.Fprintf(e.stderr, "moat: cancelled: %s\n", res.CancelReason)
		case res.Refusal != nil:
			printRefusal(e.stderr, res.Refusal)
		}
		if res.StdoutTruncated || res.StderrTruncated {
			fmt.Fprintln(e.stderr, "moat: output truncated at the profile's limit")
		}
		// A limit's kill is moat's, said above; any other signal is the
		// command's own, passed on as sh would.
		killedByMoat := res.Refusal != nil && res.Refusal.Kind == wire.RefusedLimit
		if res.Signal != "" && !killedByMoat && !res.Cancelled && res.ExitCode > 128 {
			dieBy(syscall.Signal(res.ExitCode - 128))
		}
		sigs.endLikeCommand(res)
	}
	return res.ExitCode
}

// takesValue reports whether a moat flag of moat sh is followed by its value.
func takesValue(flag string) bool {
	switch strings.TrimLeft(flag, "-") {
	case "json", "h", "help":
		return false
	}
	return true
}

// shellArgv turns sh-style arguments into the argv that runs: bash with the
// given single-letter options, then -c SCRIPT [NAME ARG...], or a script
// file and its arguments, or (fromStdin) -c with the script still to be read.
func shellArgv(args []string) (argv []string, fromStdin bool, err error) {
	argv = []string{"bash"}
	command := false
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if (a == "-o" || a == "+o") && i+1 < len(args) {
			argv = append(argv, a, args[i+1])
			i++
			continue
		}
		if len(a) < 2 || (a[0] != '-' && a[0] != '+') {
			break
		}
		letters := a[1:]
		for _, r := range letters {
			if !strings.ContainsRune("cesuxvfnlaCbhimBHPT", r) {
				return nil, false, fmt.Errorf("unknown shell option %q: moat sh takes -c SCRIPT, bash's single-letter options and -o NAME", a)
			}
		}
		if strings.ContainsRune(letters, 'c') {
			command = true
			letters = strings.ReplaceAll(letters, "c", "")
		}
		if letters != "" {
			argv = append(argv, a[:1]+letters)
		}
	}
	rest := args[i:]
	switch {
	case command && len(rest) == 0:
		return nil, false, fmt.Errorf("-c needs a script: moat sh -c 'echo hello'")
	case command:
		return append(append(argv, "-c"), rest...), false, nil
	case len(rest) > 0: // a script file and its arguments
		if strings.HasPrefix(rest[0], "-") {
			argv = append(argv, "--")
		}
		return append(argv, rest...), false, nil
	}
	return append(argv, "-c"), true, nil
}

// readStdin reads what the script gets on its standard input: nothing from a
// terminal (unless the script itself comes from there), else all of it, bounded.
func readStdin(f *os.File, script bool) ([]byte, error) {
	if fi, err := f.Stat(); err != nil || (fi.Mode()&os.ModeCharDevice != 0 && !script) {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(f, shStdinMax+1))
	if err != nil {
		return nil, fmt.Errorf("read standard input: %w", err)
	}
	if len(b) > shStdinMax {
		return nil, fmt.Errorf("standard input is over %d MiB: moat sh forwards at most that; pass a file in the workspace instead", shStdinMax>>20)
	}
	return b, nil
}

// callerEnv is the caller's environment without credentials (sandboxd drops
// them again, by the same names).
func callerEnv(environ []string) map[string]string {
	all := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			all[k] = v
		}
	}
	out := map[string]string{}
	for k, v := range all {
		if wire.ValidVarName(k) && !wire.SecretVar(k) && !strings.ContainsRune(v, 0) {
			out[k] = v
		}
	}
	return out
}

// dieBy ends moat sh by the signal that ended the script, as a shell whose
// last command died by it would be seen by its caller (bash -c 'kill $$').
// A signal that does not end the process leaves the exit code to report it.
func dieBy(sig syscall.Signal) {
	signal.Reset(sig)
	syscall.Kill(os.Getpid(), sig)
	time.Sleep(50 * time.Millisecond) // delivery is asynchronous
}
