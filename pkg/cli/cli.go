// Package cli is the moat command line: the client of the stack for people and
// scripts. Every command prints for people by default and JSON with --json.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
)

// Exit codes shared by the commands.
const (
	ExitOK       = 0
	ExitError    = 1
	ExitUsage    = 2
	ExitDegraded = 3 // status: something is missing
)

// cmd is one subcommand.
type cmd struct {
	summary string
	run     func(ctx context.Context, e *env, args []string) int
}

var commands = map[string]cmd{
	"init":      {"create MOAT_HOME: keys for every component, audit keys, rules dir", runInit},
	"profiles":  {"list the profiles profiled offers", runProfiles},
	"resolve":   {"show the concrete policy a profile gives a workspace", runResolve},
	"status":    {"show which services are up, how many copies, and what is missing", runStatus},
	"check":     {"ask policyd whether a command may run, and why (exit 0 allow, 77 deny, 78 prompt)", runCheck},
	"approvals": {"list the commands waiting for a person's approval (approver key)", runApprovals},
	"approve":   {"approve a waiting command: moat approve ID [--for session|5m|3uses|rule] [--prefix \"git push\"]", runApprove},
	"grants":    {"list the grants in force: who granted, when, scope, uses left, expiry (approver key)", runGrants},
	"revoke":    {"end a grant at once: moat revoke ID (approver key)", runRevoke},
	"deny":      {"refuse a waiting command: moat deny ID", runDeny},
	"audit":     {"query, tail -f, verify, stats, export the audit trail; hash a user name", runAudit},
	"rules":     {"check a command against rules files as `codex execpolicy check` does: moat rules check FILE… -- ARGV", sibling("rules", RulesProgram)},
	"run":       {"run a command in the sandbox: resolve, check, run, record (its status; 77 denied; 125 sandbox failure)", runRun},
	"hook":      {"answer an agent's hook: moat hook claude-code (PreToolUse on Bash; --sandbox P runs it through moat run)", runHook},
	"mcp":       {"an MCP server on stdio: run, check, profiles, audit for an agent, in one workspace under one profile (moat mcp -h)", sibling("mcp", MCPProgram)},
	"sh":        {"a drop-in for sh -c / bash -c: the script runs through the whole pipeline (moat sh -h)", runSh},
}

// Shorthands for the flag helpers.
type (
	flagSet  = flag.FlagSet
	optsFunc = func(home.Home) client.Options
)

var clientFlags = client.Flags

// env is what every command gets.
type env struct {
	stdout, stderr io.Writer
}

// Main runs the moat command line and returns its exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		e.usage()
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "moat: unknown command %q\n", args[0])
		e.usage()
		return ExitUsage
	}
	return c.run(ctx, e, args[1:])
}

func (e *env) usage() {
	fmt.Fprintln(e.stderr, "usage: moat COMMAND [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(e.stderr, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(e.stderr, "\nrun `moat COMMAND -h` for a command's flags")
}

// flags makes a command's flag set with --json and, for commands that talk
// to the bus, the shared connection flags.
func (e *env) flags(name string, bus bool) (*flag.FlagSet, *bool, optsFunc) {
	fs := flag.NewFlagSet("moat "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	js := fs.Bool("json", false, "print JSON for programs")
	var opts optsFunc
	if bus {
		opts = client.Flags(fs, home.RoleClient)
	}
	return fs, js, opts
}

// dial connects with the options the flags gave.
func (e *env) dial(ctx context.Context, opts optsFunc) (*client.Client, bool) {
	h, err := home.FromEnv()
	if err != nil {
		e.fail(err)
		return nil, false
	}
	c, err := client.Dial(ctx, opts(h))
	if err != nil {
		e.fail(err)
		return nil, false
	}
	return c, true
}

// connect parses a bus command's flags and dials the bus. A nil client
// means the command returns code at once: help was asked for, the flags
// were wrong, or the bus could not be reached (each already reported).
func (e *env) connect(ctx context.Context, fs *flag.FlagSet, args []string, opts optsFunc) (*client.Client, int) {
	if code, ok := Parse(fs, args); !ok {
		return nil, code
	}
	c, ok := e.dial(ctx, opts)
	if !ok {
		return nil, ExitError
	}
	return c, ExitOK
}

// list prints a list answer: with --json as a JSON array (an empty one as
// [], never null); else none when it is empty, or a table headed by head
// with one row a line (tab-separated), then foot.
func list[T any](e *env, js bool, l []T, none, head string, row func(*T) string, foot string) int {
	if js {
		if l == nil {
			l = []T{}
		}
		return e.json(l)
	}
	if len(l) == 0 {
		fmt.Fprintln(e.stdout, none)
		return ExitOK
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, head)
	for i := range l {
		fmt.Fprintln(tw, row(&l[i]))
	}
	tw.Flush()
	fmt.Fprintln(e.stdout, foot)
	return ExitOK
}

// output writes a run's live output to the stream it came from.
func (e *env) output(stream string, data []byte) {
	if stream == wire.StreamStderr {
		e.stderr.Write(data)
	} else {
		e.stdout.Write(data)
	}
}

// fail prints err for a person and returns the generic error code.
func (e *env) fail(err error) int { return Fail(e.stderr, err) }

// Fail prints err to w for a person, as every moat command does ("moat:
// message", with the code of a bus error), and returns ExitError.
func Fail(w io.Writer, err error) int {
	var we *wire.Error
	if errors.As(err, &we) {
		fmt.Fprintf(w, "moat: %s (%d)\n", we.Message, we.Code)
	} else {
		fmt.Fprintf(w, "moat: %v\n", err)
	}
	return ExitError
}

// busFlags makes the flag set of a command that talks to the bus and always
// answers in its own format (no --json).
func (e *env) busFlags(name string) (*flagSet, optsFunc) {
	fs := flag.NewFlagSet("moat "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs, clientFlags(fs, home.RoleClient)
}

func (e *env) json(v any) int {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return e.fail(err)
	}
	return ExitOK
}

// Parse parses a command's flags as every moat command does. ok false means
// the command returns code at once: ExitOK when help was asked for,
// ExitUsage when a flag was wrong (fs has reported it on its output).
func Parse(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK, false
		}
		return ExitUsage, false
	}
	return 0, true
}

// readRunStdin reads what a run request will carry as its command's standard
// input: up to wire.MaxStdinBytes, and an error saying so past it.
func readRunStdin(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, wire.MaxStdinBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read standard input: %w", err)
	}
	if len(b) > wire.MaxStdinBytes {
		return nil, fmt.Errorf("standard input is over %d MiB: a run carries at most that; pass a file in the workspace instead", wire.MaxStdinBytes>>20)
	}
	return b, nil
}

func join(l []string) string {
	if len(l) == 0 {
		return "-"
	}
	return strings.Join(l, " ")
}
