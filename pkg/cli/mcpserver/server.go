// Package mcpserver is `moat mcp`, the program moat-mcp (cmd/moat-mcp): an
// MCP server on stdio whose tools run commands through the stack. It is a
// program of its own so that moat, which agents start once per command,
// links neither the MCP SDK nor its JSON Schema package; moat replaces
// itself with moat-mcp for `moat mcp` (pkg/cli).
package mcpserver

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/moatsec/moat/pkg/cli"
	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// mcpVersion is the version moat mcp reports to its clients.
const mcpVersion = "0.1.0"

// mcpInstructions tell the model how to use the server.
const mcpInstructions = `moat runs shell commands for you under a security profile: each command is judged by policy, confined by the kernel and recorded.
Use run for every command (script for shell syntax, argv for one program). A refused command comes back with a "refusal" record:
layer and rule say what refused it, allow says what would permit it (a person's approval, another profile, a higher limit).
A refusal is a decision, not an error of the command or the network: do not retry the same thing another way; ask the user.
Use check to ask whether a command would run without running it, profiles to see what you may ask for, audit for what this session did.`

// mcpServer is moat mcp: an MCP server on stdio whose tools run commands
// through the stack. The workspace and the widest profile are fixed by the
// flags of whoever starts it; a model may only ask for narrower profiles
// and working directories inside the workspace.
type mcpServer struct {
	bus       *client.Client
	approver  *client.Client // answers approvals a person gave through elicitation; nil: bus approvers only
	workspace string         // absolute, symlinks resolved
	profile   string         // the widest profile granted, and the default
	maxOutput int            // bytes of stdout and of stderr returned to the model
	log       *slog.Logger

	mu       sync.Mutex
	sessions map[*mcp.ServerSession]string // MCP session → moat session id
	pending  *approvals
}

// Main runs moat mcp with the arguments that follow `mcp` and returns its
// exit code; the MCP session is on os.Stdin and os.Stdout, and stdout
// takes nothing else.
func Main(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("moat mcp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	opts := client.Flags(fs, home.RoleClient)
	ws := fs.String("workspace", os.Getenv(cli.EnvWorkspace), "the workspace every command runs in (env MOAT_WORKSPACE; default the current directory)")
	name := fs.String("profile", os.Getenv(cli.EnvProfile), "the widest profile the model may use, and its default (env MOAT_PROFILE; default offline)")
	approverCreds := fs.String("approver-creds", "", "approver key: lets a person approve prompts through the MCP client's elicitation (default: only moat approve answers)")
	maxOutput := fs.Int("max-output", 64<<10, "bytes of stdout and of stderr returned per run (the rest is cut and flagged)")
	if code, ok := cli.Parse(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "moat mcp: takes no arguments; configure it with flags (moat mcp -h)")
		return cli.ExitUsage
	}
	workspace, err := filepath.Abs(*ws) // "": the current directory
	if err == nil {
		workspace, err = filepath.EvalSymlinks(workspace)
	}
	if err != nil {
		return cli.Fail(stderr, fmt.Errorf("workspace: %w", err))
	}
	if *maxOutput <= 0 {
		return cli.Fail(stderr, errors.New("--max-output must be positive"))
	}
	h, err := home.FromEnv()
	if err != nil {
		return cli.Fail(stderr, err)
	}
	c, err := client.Dial(ctx, opts(h))
	if err != nil {
		return cli.Fail(stderr, err)
	}
	defer c.Close()
	s := &mcpServer{bus: c, workspace: workspace, profile: *name, maxOutput: *maxOutput,
		log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), sessions: map[*mcp.ServerSession]string{}, pending: newApprovals()}
	if s.profile == "" {
		l, err := c.Profiles(ctx)
		if err != nil {
			return cli.Fail(stderr, err)
		}
		s.profile = l.Default
	}
	// The widest profile must exist now: a typo is a start-up error, not a
	// refusal of every command later.
	if _, err := c.Resolve(ctx, &wire.ResolveRequest{Profile: s.profile, Workspace: workspace}); err != nil {
		return cli.Fail(stderr, fmt.Errorf("--profile %s: %w", s.profile, err))
	}
	if *approverCreds != "" {
		o := opts(h)
		o.Creds, o.Role, o.Name = *approverCreds, home.RoleApprover, "moat-mcp-approver"
		if s.approver, err = client.Dial(ctx, o); err != nil {
			return cli.Fail(stderr, err)
		}
		defer s.approver.Close()
	}
	srv := s.server()
	if err := srv.Run(ctx, &mcp.StdioTransport{}); err != nil && !errors.Is(err, context.Canceled) {
		return cli.Fail(stderr, err)
	}
	return cli.ExitOK
}

// server builds the MCP server with moat's tools.
func (s *mcpServer) server() *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "moat", Title: "moat: run commands judged, confined and recorded", Version: mcpVersion},
		&mcp.ServerOptions{Instructions: mcpInstructions, Logger: s.log})
	no, yes := false, true
	mcp.AddTool(srv, &mcp.Tool{Name: "run", Description: "Run a shell script (bash -c) or a command (argv) in the workspace under a moat profile: judged by policy, confined by the kernel, recorded. Returns the exit code, stdout and stderr (with truncation flags), the duration, and a refusal record when moat did not run it or stopped it.",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: &yes, OpenWorldHint: &yes}}, s.run)
	mcp.AddTool(srv, &mcp.Tool{Name: "check", Description: "Ask moat's policy whether a script or command would run, and why, without running it.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: &no}}, s.check)
	mcp.AddTool(srv, &mcp.Tool{Name: "profiles", Description: "List the profiles this server may run commands under (the widest first granted by whoever started it), and the default.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: &no}}, s.profiles)
	mcp.AddTool(srv, &mcp.Tool{Name: "audit", Description: "The audit records of this session: every decision and run, newest last.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: &no}}, s.audit)
	return srv
}

// session is the moat session id of an MCP session, made on first use.
func (s *mcpServer) session(ss *mcp.ServerSession) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.sessions[ss]
	if !ok {
		id = wire.NewID()
		s.sessions[ss] = id
	}
	return id
}

// canElicit reports whether a person can be asked through this session's client.
func (s *mcpServer) canElicit(ss *mcp.ServerSession) bool {
	if s.approver == nil || ss == nil {
		return false
	}
	p := ss.InitializeParams()
	return p != nil && p.Capabilities != nil && p.Capabilities.Elicitation != nil
}
