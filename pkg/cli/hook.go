package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
)

// hookInputMax bounds the hook input read from stdin, before decoding.
const hookInputMax = 1 << 20

// preToolUse is the part of Claude Code's PreToolUse hook input moat reads.
type preToolUse struct {
	SessionID     string                     `json:"session_id"`
	Cwd           string                     `json:"cwd"`
	HookEventName string                     `json:"hook_event_name"`
	ToolName      string                     `json:"tool_name"`
	ToolInput     map[string]json.RawMessage `json:"tool_input"`
}

// hookAnswer is the hook's JSON answer (Claude Code's documented schema).
type hookAnswer struct {
	HookSpecificOutput hookDecision `json:"hookSpecificOutput"`
}

type hookDecision struct {
	HookEventName            string                     `json:"hookEventName"`
	PermissionDecision       string                     `json:"permissionDecision"`
	PermissionDecisionReason string                     `json:"permissionDecisionReason"`
	UpdatedInput             map[string]json.RawMessage `json:"updatedInput,omitempty"`
}

// Claude Code's permission decisions.
const (
	hookAllow = "allow"
	hookDeny  = "deny"
	hookAsk   = "ask"
)

func runHook(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 || args[0] != "claude-code" {
		fmt.Fprintln(e.stderr, "usage: moat hook claude-code [--profile P | --sandbox P] [--workspace DIR]\n\nthe only agent with hooks moat answers is claude-code (see docs/integrations.md)")
		return ExitUsage
	}
	fs, opts := e.busFlags("hook claude-code")
	name := fs.String("profile", os.Getenv(EnvProfile), "judge Bash commands against this profile (env MOAT_PROFILE; default offline)")
	sandbox := fs.String("sandbox", "", "also run each allowed command through moat run under this profile (sets --profile)")
	ws := fs.String("workspace", os.Getenv(EnvWorkspace), "workspace (env MOAT_WORKSPACE; default CLAUDE_PROJECT_DIR, else the hook input's cwd)")
	if code, ok := Parse(fs, args[1:]); !ok {
		return code
	}
	if *sandbox != "" {
		*name = *sandbox
	}
	in, err := readHookInput(os.Stdin)
	if err != nil {
		return e.hookAnswer(hookDeny, "moat hook: "+err.Error()+"; the command was not run (moat fails closed)", nil)
	}
	if in.ToolName != "Bash" {
		return ExitOK // not a shell command: no decision, Claude Code's own rules apply
	}
	var command string
	if err := json.Unmarshal(in.ToolInput["command"], &command); err != nil || strings.TrimSpace(command) == "" {
		return e.hookAnswer(hookDeny, "moat hook: the Bash tool input has no command string; the command was not run (moat fails closed)", nil)
	}
	workspace := *ws
	if workspace == "" {
		workspace = os.Getenv("CLAUDE_PROJECT_DIR")
	}
	if workspace == "" {
		workspace = in.Cwd
	}
	if !filepath.IsAbs(workspace) || (in.Cwd != "" && !filepath.IsAbs(in.Cwd)) {
		return e.hookAnswer(hookDeny, "moat hook: no absolute workspace (pass --workspace, or run under Claude Code, which sets CLAUDE_PROJECT_DIR); the command was not run", nil)
	}
	cwd := in.Cwd
	if cwd != "" && cwd != workspace && !strings.HasPrefix(cwd, workspace+"/") {
		cwd = ""
	}
	h, err := home.FromEnv()
	var c *client.Client
	if err == nil {
		c, err = client.Dial(ctx, opts(h))
	}
	if err != nil {
		return e.hookAnswer(hookDeny, fmt.Sprintf("moat hook: cannot reach the moat stack (%v), so the command cannot be judged and was not run; start the stack (moat status says what is missing)", err), nil)
	}
	defer c.Close()
	req := wire.CheckRequest{SessionID: in.SessionID, Argv: []string{"bash", "-c", command}, Cwd: cwd, Workspace: workspace, Profile: wire.RefName(*name)}
	d := c.Check(ctx, &req)
	ref := wire.RefusalOf(req.Argv, &d)
	c.Explain(ctx, ref, req, nil)
	switch {
	case d.Verdict == wire.VerdictDeny:
		return e.hookAnswer(hookDeny, refusalText(ref), nil)
	case *sandbox == "" && d.Verdict == wire.VerdictPrompt:
		return e.hookAnswer(hookAsk, refusalText(ref), nil)
	case *sandbox == "" && wire.RestsOnConfinement(&d):
		// The allow holds for a confined run, and this one would not be.
		return e.hookAnswer(hookAsk, "moat: "+reasonText(d)+". That allow holds only for a confined run, and this hook runs "+
			"without --sandbox: Claude Code would run the command unconfined, so it asks you (or use --sandbox PROFILE)", nil)
	case *sandbox == "":
		return e.hookAnswer(hookAllow, "moat: "+reasonText(d), nil)
	}
	self, err := os.Executable()
	if err != nil {
		return e.hookAnswer(hookDeny, "moat hook: cannot find the moat binary to sandbox the command: "+err.Error(), nil)
	}
	updated := map[string]json.RawMessage{}
	for k, v := range in.ToolInput {
		updated[k] = v
	}
	session := in.SessionID
	if wire.CheckID("session", session) != nil {
		session = ""
	}
	wrapped, _ := json.Marshal(sandboxCommand(self, *sandbox, workspace, session, command))
	updated["command"] = wrapped
	if d.Verdict == wire.VerdictPrompt {
		return e.hookAnswer(hookAsk, refusalText(ref)+" If you accept here, moat run still waits for a moat approver (moat approve).", updated)
	}
	return e.hookAnswer(hookAllow, "moat: runs confined by profile "+*sandbox+"; "+reasonText(d), updated)
}

// sandboxCommand is the shell command that runs command through moat run,
// in Claude Code's session (so the audit trail groups it), every word quoted
// for a POSIX shell.
func sandboxCommand(self, profile, workspace, session, command string) string {
	words := []string{self, "run", "--profile", profile, "--workspace", workspace}
	if session != "" {
		words = append(words, "--session", session)
	}
	words = append(words, "--", "bash", "-c", command)
	for i, w := range words {
		words[i] = shellQuote(w)
	}
	return strings.Join(words, " ")
}

// shellQuote quotes s for a POSIX shell: plain words stay, others go in
// single quotes with each ' written as '\”.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:@,+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func readHookInput(r io.Reader) (*preToolUse, error) {
	data, err := io.ReadAll(io.LimitReader(r, hookInputMax+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("cannot read the hook input: %v", err)
	case len(data) > hookInputMax:
		return nil, fmt.Errorf("the hook input is over %d KiB", hookInputMax>>10)
	}
	var in preToolUse
	if err := json.Unmarshal(data, &in); err != nil {
		return nil, fmt.Errorf("the hook input is not Claude Code's PreToolUse JSON: %v", err)
	}
	if in.HookEventName != "PreToolUse" {
		return nil, fmt.Errorf("hook_event_name is %q: configure moat hook claude-code under PreToolUse", in.HookEventName)
	}
	if in.ToolName == "" {
		return nil, fmt.Errorf("the hook input names no tool_name")
	}
	return &in, nil
}

// refusalText is the reason Claude shows the model on a deny or the person
// on an ask: the plain sentence, then the structured record.
func refusalText(r *wire.Refusal) string {
	if r == nil {
		return "moat refused the command"
	}
	b, _ := json.Marshal(r)
	return r.Message + "\nmoat refusal: " + string(b)
}

func reasonText(d wire.Decision) string {
	parts := make([]string, 0, len(d.Reasons))
	for _, r := range d.Reasons {
		parts = append(parts, r.Rule+": "+r.Message)
	}
	return strings.Join(parts, "; ")
}

// hookAnswer prints the decision and exits 0, as Claude Code expects of a
// JSON answer.
func (e *env) hookAnswer(decision, reason string, updated map[string]json.RawMessage) int {
	b, _ := json.Marshal(hookAnswer{HookSpecificOutput: hookDecision{HookEventName: "PreToolUse",
		PermissionDecision: decision, PermissionDecisionReason: reason, UpdatedInput: updated}})
	fmt.Fprintf(e.stdout, "%s\n", b)
	return ExitOK
}
