package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/moatsec/moat/pkg/cli"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// mcpStdinMax bounds the standard input a model may give a command.
const mcpStdinMax = 1 << 20

// command is what the run and check tools take: a script or an argv, and
// where and under what to judge it. Nothing here can name the workspace or
// widen the profile: the server fixes both.
type command struct {
	Script  string   `json:"script,omitempty" jsonschema:"a bash script, run as bash -c SCRIPT (give script or argv, not both)"`
	Argv    []string `json:"argv,omitempty" jsonschema:"one program and its arguments, run without a shell (give script or argv, not both)"`
	Profile string   `json:"profile,omitempty" jsonschema:"a profile no wider than the server's (see the profiles tool); default the server's"`
	Cwd     string   `json:"cwd,omitempty" jsonschema:"working directory: relative to the workspace, or absolute inside it; default the workspace"`
}

type runIn struct {
	command
	TimeoutMS int64  `json:"timeout_ms,omitempty" jsonschema:"kill the command after this many milliseconds (only lowers the profile's timeout)"`
	Stdin     string `json:"stdin,omitempty" jsonschema:"standard input for the command (at most 1 MiB)"`
}

type runOut struct {
	RequestID       string        `json:"request_id"`
	Profile         string        `json:"profile"`
	Cwd             string        `json:"cwd"`
	ExitCode        int           `json:"exit_code"`
	Signal          string        `json:"signal,omitempty"`
	Stdout          string        `json:"stdout"`
	Stderr          string        `json:"stderr"`
	StdoutTruncated bool          `json:"stdout_truncated"`
	StderrTruncated bool          `json:"stderr_truncated"`
	DurationMS      float64       `json:"duration_ms"`
	Refusal         *wire.Refusal `json:"refusal,omitempty"`
}

type checkOut struct {
	Verdict string        `json:"verdict"`
	Reasons []wire.Reason `json:"reasons"`
	Profile string        `json:"profile"`
	Refusal *wire.Refusal `json:"refusal,omitempty"`
}

// argv turns the tool input into the words to run.
func (c command) argv() ([]string, error) {
	switch {
	case c.Script != "" && len(c.Argv) > 0:
		return nil, errors.New("give script or argv, not both")
	case c.Script != "":
		return []string{"bash", "-c", c.Script}, nil
	case len(c.Argv) > 0 && c.Argv[0] != "":
		return c.Argv, nil
	}
	return nil, errors.New("nothing to run: give script (a bash script) or argv (a program and its arguments)")
}

// bounds checks the input against the server's bounds: the words to run, the
// working directory and the profile granted.
func (s *mcpServer) bounds(ctx context.Context, c command) (argv []string, cwd, profile string, err error) {
	if argv, err = c.argv(); err != nil {
		return nil, "", "", err
	}
	if cwd, err = s.cwd(c.Cwd); err != nil {
		return nil, "", "", err
	}
	if profile, err = s.grant(ctx, c.Profile, cwd); err != nil {
		return nil, "", "", err
	}
	return argv, cwd, profile, nil
}

func (s *mcpServer) run(ctx context.Context, req *mcp.CallToolRequest, in runIn) (*mcp.CallToolResult, runOut, error) {
	var out runOut
	if len(in.Stdin) > mcpStdinMax || in.TimeoutMS < 0 {
		return nil, out, fmt.Errorf("stdin is at most %d KiB and timeout_ms is not negative", mcpStdinMax>>10)
	}
	argv, cwd, profile, err := s.bounds(ctx, in.command)
	if err != nil {
		return nil, out, err
	}
	session := s.session(req.Session)
	args, _ := json.Marshal(in)
	rr := &wire.RunRequest{RequestID: wire.NewID(), SessionID: session, Profile: profile, Workspace: s.workspace, Cwd: cwd,
		Argv: argv, Stdin: []byte(in.Stdin), TimeoutMS: in.TimeoutMS}

	// A person asked through the client: on the first call, when the policy
	// would prompt; on the retry, their answer is given to policyd.
	if s.canElicit(req.Session) {
		if accept, note, answered := answerFor(req.Params); answered {
			if !s.pending.take(req.Params.RequestState, session, string(args)) {
				return nil, out, errors.New("this approval does not match a question moat asked about these arguments in this session (or it expired): call run again")
			}
			verdict := wire.VerdictDeny
			if accept {
				verdict = wire.VerdictAllow
			}
			stop, err := s.answerRun(rr.RequestID, verdict, note)
			if err != nil {
				return nil, out, fmt.Errorf("cannot wait for policyd's question: %w", err)
			}
			defer stop()
		} else {
			d := s.bus.Check(ctx, &wire.CheckRequest{SessionID: session, Argv: argv, Cwd: cwd, Workspace: s.workspace, Profile: wire.RefName(profile)})
			if d.Verdict == wire.VerdictPrompt {
				tok := s.pending.put(session, string(args))
				return &mcp.CallToolResult{InputRequests: approvalRequest(argv, profile, d), RequestState: tok}, out, nil
			}
		}
	}

	res, err := s.bus.Run(ctx, rr, nil)
	if err != nil {
		return nil, out, fmt.Errorf("moat could not run it: %w", err)
	}
	s.bus.Explain(ctx, res.Refusal, cli.CheckOf(rr), s.grantable(ctx, cwd))
	out = runOut{RequestID: rr.RequestID, Profile: profile, Cwd: cwd, ExitCode: res.ExitCode, Signal: res.Signal,
		DurationMS: float64(res.DurationUS) / 1000, Refusal: res.Refusal}
	out.Stdout, out.StdoutTruncated = clip(res.Stdout, s.maxOutput)
	out.Stderr, out.StderrTruncated = clip(res.Stderr, s.maxOutput)
	out.StdoutTruncated = out.StdoutTruncated || res.StdoutTruncated
	out.StderrTruncated = out.StderrTruncated || res.StderrTruncated
	return &mcp.CallToolResult{IsError: res.Refusal != nil, Content: []mcp.Content{&mcp.TextContent{Text: runText(&out)}}}, out, nil
}

func (s *mcpServer) check(ctx context.Context, req *mcp.CallToolRequest, in command) (*mcp.CallToolResult, checkOut, error) {
	argv, cwd, profile, err := s.bounds(ctx, in)
	if err != nil {
		return nil, checkOut{}, err
	}
	q := wire.CheckRequest{SessionID: s.session(req.Session), Argv: argv, Cwd: cwd, Workspace: s.workspace, Profile: wire.RefName(profile)}
	d := s.bus.Check(ctx, &q)
	out := checkOut{Verdict: d.Verdict, Reasons: d.Reasons, Profile: profile, Refusal: wire.RefusalOf(argv, &d)}
	s.bus.Explain(ctx, out.Refusal, q, s.grantable(ctx, cwd))
	return nil, out, nil
}

type profilesOut struct {
	Default  string             `json:"default"` // the server's profile: the widest it grants
	Profiles []wire.ProfileInfo `json:"profiles"`
}

func (s *mcpServer) profiles(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, profilesOut, error) {
	l, err := s.bus.Profiles(ctx)
	if err != nil {
		return nil, profilesOut{}, err
	}
	out := profilesOut{Default: s.profile, Profiles: []wire.ProfileInfo{}}
	ok := s.grantable(ctx, "")
	for _, p := range l.Profiles {
		if p.Enabled && ok(p.Name) {
			out.Profiles = append(out.Profiles, p)
		}
	}
	return nil, out, nil
}

// grantable reports, per profile name, whether this server may grant it.
func (s *mcpServer) grantable(ctx context.Context, cwd string) func(string) bool {
	return func(name string) bool {
		_, err := s.grant(ctx, name, cwd)
		return err == nil
	}
}

// auditPages bounds the pages the audit tool reads for one call.
const auditPages = 50

type auditIn struct {
	Limit int `json:"limit,omitempty" jsonschema:"how many records at most (default 50, at most 200)"`
}

type auditOut struct {
	SessionID string             `json:"session_id"`
	Events    []wire.StoredEvent `json:"events"`
}

func (s *mcpServer) audit(ctx context.Context, req *mcp.CallToolRequest, in auditIn) (*mcp.CallToolResult, auditOut, error) {
	limit := in.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 200)
	out := auditOut{SessionID: s.session(req.Session), Events: []wire.StoredEvent{}}
	// Pages come oldest first; keep the newest limit, reading at most
	// auditPages pages.
	var cursor uint64
	for range auditPages {
		page, err := s.bus.AuditQuery(ctx, &wire.AuditQuery{SessionID: out.SessionID, Limit: 200, Cursor: cursor})
		if err != nil {
			return nil, out, fmt.Errorf("the audit trail cannot be read: %w", err)
		}
		out.Events = append(out.Events, page.Events...)
		if len(out.Events) > limit {
			out.Events = append(out.Events[:0], out.Events[len(out.Events)-limit:]...)
		}
		if page.Next == 0 || len(page.Events) == 0 {
			break
		}
		cursor = page.Next
	}
	return nil, out, nil
}

// clip cuts b to at most max bytes on a rune boundary.
func clip(b []byte, max int) (string, bool) {
	if len(b) <= max {
		return string(b), false
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(b[cut]) {
		cut--
	}
	return string(b[:cut]), true
}

// runText is the run's result for a model that reads text, not structure.
func runText(o *runOut) string {
	var b strings.Builder
	if o.Refusal != nil {
		fmt.Fprintf(&b, "REFUSED by %s (%s): %s\n", o.Refusal.Layer, o.Refusal.Rule, o.Refusal.Message)
		if o.Refusal.Allow.Profile != "" {
			fmt.Fprintf(&b, "profile %s would allow it.\n", o.Refusal.Allow.Profile)
		}
	}
	fmt.Fprintf(&b, "exit code %d", o.ExitCode)
	if o.Signal != "" {
		fmt.Fprintf(&b, " (%s)", o.Signal)
	}
	fmt.Fprintf(&b, " after %.1f ms under profile %s\n", o.DurationMS, o.Profile)
	for _, s := range []struct {
		name, text string
		cut        bool
	}{{"stdout", o.Stdout, o.StdoutTruncated}, {"stderr", o.Stderr, o.StderrTruncated}} {
		if s.text == "" && !s.cut {
			continue
		}
		fmt.Fprintf(&b, "--- %s", s.name)
		if s.cut {
			b.WriteString(" (truncated)")
		}
		fmt.Fprintf(&b, " ---\n%s", s.text)
		if !strings.HasSuffix(s.text, "\n") {
			b.WriteString("\n")
		}
	}
	return b.String()
}
