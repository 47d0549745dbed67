package cli

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/moatsec/moat/pkg/wire"
)

// runPass are the caller's variables moat run sends along; sandboxd filters
// them again by the profile and drops credentials.
var runPass = []string{"PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TERM", "TZ", "COLUMNS", "LINES", "NO_COLOR"}

func runRun(ctx context.Context, e *env, args []string) int {
	fs, js, opts := e.flags("run", true)
	name := fs.String("profile", "", "profile name or alias (default offline)")
	ws := fs.String("workspace", "", "workspace directory (default the current directory)")
	cwd := fs.String("cwd", "", "working directory inside the workspace (default the current directory when inside it)")
	timeout := fs.Duration("timeout", 0, "lower the profile's timeout")
	stdin := fs.Bool("stdin", false, "send this process's standard input to the command")
	session := fs.String("session", os.Getenv(EnvSession), "session id that groups runs in the audit trail (env MOAT_SESSION)")
	approval := fs.String("approval", wire.ApprovalOnRequest, "what a prompt becomes: on-request (ask a person and wait) or never (deny at once)")
	var extra envList
	fs.Var(&extra, "env", "NAME=VALUE for the command (repeatable; credentials are dropped)")
	if code, ok := Parse(fs, args); !ok {
		return code
	}
	argv := fs.Args()
	if len(argv) == 0 {
		fmt.Fprintln(e.stderr, "moat run: give the command after --, e.g. moat run -- make test")
		return ExitUsage
	}
	if err := wire.CheckArgv(argv); err != nil {
		fmt.Fprintf(e.stderr, "moat run: %s\n", wire.Message(err))
		return ExitUsage
	}
	if err := wire.CheckID("session", *session); err != nil {
		fmt.Fprintf(e.stderr, "moat run: %s\n", wire.Message(err))
		return ExitUsage
	}
	workspace, dir, err := workdirs(*ws, *cwd)
	if err != nil {
		return e.fail(err)
	}
	req := &wire.RunRequest{SessionID: *session, Profile: *name, Workspace: workspace, Cwd: dir, Argv: argv,
		Env: passEnv(os.Environ()), TimeoutMS: timeout.Milliseconds(), Stream: !*js, Approval: *approval}
	if *approval != wire.ApprovalOnRequest && *approval != wire.ApprovalNever {
		fmt.Fprintf(e.stderr, "moat run: --approval %q: want on-request or never\n", *approval)
		return ExitUsage
	}
	for _, kv := range extra {
		k, v, _ := strings.Cut(kv, "=")
		req.Env[k] = v
	}
	if *stdin {
		if req.Stdin, err = readRunStdin(os.Stdin); err != nil {
			return e.fail(err)
		}
	}
	c, ok := e.dial(ctx, opts)
	if !ok {
		return wire.ExitSandboxFailure
	}
	defer c.Close()
	sigs := forwardSignals(ctx)
	defer sigs.release()
	res, err := c.RunSignaled(ctx, req, e.output, e.waiting(*js), sigs.ch)
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
			fmt.Fprintf(e.stderr, "moat: not run: %s\n", res.Decision.Verdict)
			for _, r := range res.Decision.Reasons {
				src := ""
				if r.Source != "" {
					src = " (" + r.Source + ")"
				}
				fmt.Fprintf(e.stderr, "  %s: %s%s\n", r.Rule, r.Message, src)
			}
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
		case res.TimedOut:
			fmt.Fprintln(e.stderr, "moat: killed at the timeout")
		case res.Signal != "":
			fmt.Fprintf(e.stderr, "moat: killed by %s\n", res.Signal)
		}
		if res.StdoutTruncated || res.StderrTruncated {
			fmt.Fprintln(e.stderr, "moat: output truncated at the profile's limit")
		}
		sigs.endLikeCommand(res)
	}
	return res.ExitCode
}

// passEnv picks the runPass variables out of environ. sandboxd filters again
// by the profile; this only keeps the rest of the caller's environment home.
func passEnv(environ []string) map[string]string {
	out := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && slices.Contains(runPass, k) {
			out[k] = v
		}
	}
	return out
}

type envList []string

func (l *envList) String() string { return strings.Join(*l, ",") }
func (l *envList) Set(v string) error {
	if !strings.Contains(v, "=") {
		return fmt.Errorf("want NAME=VALUE")
	}
	*l = append(*l, v)
	return nil
}
