package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
)

func runCheck(ctx context.Context, e *env, args []string) int {
	fs, js, opts := e.flags("check", true)
	name := fs.String("profile", "", "profile name or alias (default offline)")
	ws := fs.String("workspace", "", "workspace directory (default the current directory)")
	cwd := fs.String("cwd", "", "working directory inside the workspace (default the current directory when inside it)")
	approval := fs.String("approval", "", "what a prompt becomes: never (deny), on-request (ask a person and wait); default report it")
	var extra envList
	fs.Var(&extra, "env", "NAME=VALUE the command would get, judged as moat run --env is (repeatable)")
	if code, ok := Parse(fs, args); !ok {
		return code
	}
	argv := fs.Args()
	if len(argv) == 0 {
		fmt.Fprintln(e.stderr, "moat check: give the command after --, e.g. moat check -- curl https://example.com")
		return ExitUsage
	}
	if err := wire.CheckArgv(argv); err != nil { // policyd would refuse it too (400), as a deny
		fmt.Fprintf(e.stderr, "moat check: %s\n", wire.Message(err))
		return ExitUsage
	}
	workspace, dir, err := workdirs(*ws, *cwd)
	if err != nil {
		return e.fail(err)
	}
	c, ok := e.dial(ctx, opts)
	if !ok {
		return ExitError
	}
	defer c.Close()
	req := &wire.CheckRequest{Argv: argv, Workspace: workspace, Cwd: dir, Profile: wire.RefName(*name), Approval: *approval}
	for _, kv := range extra {
		k, v, _ := strings.Cut(kv, "=")
		if req.Env == nil {
			req.Env = map[string]string{}
		}
		req.Env[k] = v
	}
	d := c.CheckWaiting(ctx, req, e.waiting(*js))
	if *js {
		e.json(d)
	} else {
		printDecision(e, argv, d)
	}
	return verdictExit(d.Verdict)
}

// waiting tells, while a person is asked, who may answer and how long is
// left: on stderr when the approval starts and every waitingEvery, or, for
// --json, as one JSON line per interim message on stdout before the answer.
func (e *env) waiting(js bool) func(wire.ApprovalWait) {
	var last time.Time
	var id string
	return func(w wire.ApprovalWait) {
		if js {
			b, _ := json.Marshal(w)
			fmt.Fprintf(e.stdout, "%s\n", b)
			return
		}
		left := time.Until(w.ExpiresAt).Round(time.Second)
		switch {
		case w.ID != id:
			id, last = w.ID, time.Now()
			why := ""
			if w.Reason != "" {
				why = " (" + w.Reason + ")"
			}
			fmt.Fprintf(e.stderr, "moat: waiting for a person to approve%s\n", why)
			fmt.Fprintf(e.stderr, "moat: asked: whoever holds the approver key — moat approvals lists it; moat approve %s or moat deny %s answers; %s left\n", w.ID, w.ID, left)
		case time.Since(last) >= waitingEvery:
			last = time.Now()
			fmt.Fprintf(e.stderr, "moat: still waiting for approval %s: %s left\n", w.ID, left)
		}
	}
}

// waitingEvery is how often a person waiting hears how long is left.
const waitingEvery = 10 * time.Second

func verdictExit(v string) int {
	switch v {
	case wire.VerdictAllow:
		return ExitOK
	case wire.VerdictPrompt:
		return wire.ExitPrompt
	}
	return wire.ExitDenied
}

func printDecision(e *env, argv []string, d wire.Decision) {
	fmt.Fprintf(e.stdout, "%s  %s\n", strings.ToUpper(d.Verdict), strings.Join(argv, " "))
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	for _, r := range d.Reasons {
		src := ""
		if r.Source != "" {
			src = "  (" + r.Source + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s%s\n", r.Rule, r.Message, src)
	}
	tw.Flush()
	if d.DecidedBy != "" {
		fmt.Fprintf(e.stdout, "decided by policyd %s in %s\n", d.DecidedBy, time.Duration(d.ElapsedUS)*time.Microsecond)
	}
}

// workdirs makes the workspace and cwd absolute: the workspace defaults to
// the current directory, the cwd to the current directory when it lies
// inside the workspace.
func workdirs(ws, cwd string) (string, string, error) {
	workspace, err := absOrCwd(ws)
	if err != nil {
		return "", "", err
	}
	if cwd != "" {
		return workspace, absIfSet(cwd), nil
	}
	here, err := os.Getwd()
	if err == nil && (here == workspace || strings.HasPrefix(here, workspace+"/")) {
		return workspace, here, nil
	}
	return workspace, "", nil
}

func runApprovals(ctx context.Context, e *env, args []string) int {
	fs, js, opts := e.approverFlags("approvals")
	wait := fs.Duration("wait", 300*time.Millisecond, "how long to gather answers from every policyd")
	c, code := e.connect(ctx, fs, args, opts)
	if c == nil {
		return code
	}
	defer c.Close()
	l, err := c.Approvals(ctx, *wait)
	if err != nil {
		return e.fail(err)
	}
	return list(e, *js, l, "nothing waits for approval", "ID\tEXPIRES IN\tPROFILE\tCOMMAND\tWHY", func(a *wire.ApprovalAsk) string {
		why := ""
		if len(a.Reasons) > 0 {
			why = a.Reasons[0].Message
		}
		what := strings.Join(a.Argv, " ")
		if a.Net != nil {
			what = "network: " + a.Net.Dest() + " (" + a.Net.Proto + ")"
		}
		return fmt.Sprintf("%s\t%s\t%s\t%s\t%s", a.ID, time.Until(a.ExpiresAt).Round(time.Second), a.Profile, what, why)
	}, "\nanswer with: moat approve ID  or  moat deny ID")
}

func runApprove(ctx context.Context, e *env, args []string) int {
	return answer(ctx, e, "approve", wire.VerdictAllow, args)
}
func runDeny(ctx context.Context, e *env, args []string) int {
	return answer(ctx, e, "deny", wire.VerdictDeny, args)
}

func answer(ctx context.Context, e *env, cmd, verdict string, args []string) int {
	fs, js, opts := e.approverFlags(cmd)
	reason := fs.String("reason", "", "why, for the record")
	var grantFor, prefix *string
	if verdict == wire.VerdictAllow {
		grantFor = fs.String("for", wire.GrantOnce, "grant more than once: session, a duration (5m, 2h), a use count (3uses), or rule (moat grants lists them); a network ask also takes run")
		prefix = fs.String("prefix", "", "with --for: cover every command that starts with these words (\"git push\"), not only this one")
	}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		args = append(append([]string{}, args[1:]...), args[0]) // moat approve ID --reason …
	}
	if code, ok := Parse(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(e.stderr, "moat %s: give one approval id (moat approvals lists them)\n", cmd)
		return ExitUsage
	}
	c, ok := e.dial(ctx, opts)
	if !ok {
		return ExitError
	}
	defer c.Close()
	by := "unknown"
	if u, err := user.Current(); err == nil {
		by = u.Username
	}
	a := &wire.ApprovalAnswer{ID: fs.Arg(0), Verdict: verdict, By: by, Reason: *reason}
	if grantFor != nil {
		if _, err := wire.ParseGrant(*grantFor); err != nil {
			fmt.Fprintf(e.stderr, "moat %s: --for: %v\n", cmd, err)
			return ExitUsage
		}
		a.For, a.Prefix = *grantFor, strings.Fields(*prefix)
	}
	ack, err := c.Answer(ctx, a)
	if err != nil {
		return e.fail(err)
	}
	if *js {
		return e.json(ack)
	}
	fmt.Fprintf(e.stdout, "approval %s: %s\n", ack.ID, map[string]string{wire.VerdictAllow: "granted", wire.VerdictDeny: "refused"}[ack.Verdict])
	if g := ack.Grant; g != nil {
		fmt.Fprintf(e.stdout, "grant %s: %s, %s\n", g.ID, g.Describe(), grantTerms(g))
	}
	return ExitOK
}

// approverFlags are the flags of commands that answer prompts: they use the
// approver key, never the client key an agent holds.
func (e *env) approverFlags(name string) (*flagSet, *bool, optsFunc) {
	fs, js, _ := e.flags(name, false)
	return fs, js, clientFlags(fs, home.RoleApprover)
}
