//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/moatsec/moat/test/testbin"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// mcpResult is the run and check tools' structured output.
type mcpResult struct {
	RequestID       string        `json:"request_id"`
	Profile         string        `json:"profile"`
	Cwd             string        `json:"cwd"`
	ExitCode        int           `json:"exit_code"`
	Stdout          string        `json:"stdout"`
	Stderr          string        `json:"stderr"`
	StdoutTruncated bool          `json:"stdout_truncated"`
	Verdict         string        `json:"verdict"`
	Refusal         *wire.Refusal `json:"refusal"`
}

// mcpSession starts the real moat mcp binary over stdio with the SDK's
// client (moat replaces itself with moat-mcp); elicit, when set, answers
// elicitation requests.
func mcpSession(t *testing.T, e *env, elicit func(*mcp.ElicitRequest) *mcp.ElicitResult, args ...string) *mcp.ClientSession {
	t.Helper()
	var opts *mcp.ClientOptions
	if elicit != nil {
		opts = &mcp.ClientOptions{ElicitationHandler: func(_ context.Context, r *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return elicit(r), nil
		}}
	}
	c := mcp.NewClient(&mcp.Implementation{Name: "moat-e2e", Version: "1"}, opts)
	cmd := e.cmd("moat", append([]string{"mcp"}, args...)...)
	cmd.Stderr = os.Stderr
	s, err := c.Connect(context.Background(), &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect to moat mcp: %v", err)
	}
	// moat became moat-mcp (execve): the client's child is the server itself.
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid)); err != nil || filepath.Base(exe) != "moat-mcp" {
		t.Fatalf("moat mcp's process runs %q (%v), want moat-mcp", exe, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// call calls a tool and decodes its structured output.
func call(t *testing.T, s *mcp.ClientSession, tool string, args map[string]any, out any) *mcp.CallToolResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("call %s %v: %v", tool, args, err)
	}
	if out != nil && res.StructuredContent != nil {
		b, _ := json.Marshal(res.StructuredContent)
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: %v\n%s", tool, err, b)
		}
	}
	return res
}

func text(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// TestMCP drives moat mcp, the real binary, with the MCP SDK's client
// against a real stack: the tools, a run, a refusal and its record,
// approval by elicitation and by the bus, the session's audit records, and
// the bounds a model cannot cross.
func TestMCP(t *testing.T) {
	e, url := agentStack(t, "")
	outside := filepath.Dir(e.ws)
	if err := os.Symlink(outside, filepath.Join(e.ws, "escape")); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(e.ws, "sub"), 0o755)
	server := []string{"--workspace", e.ws, "--profile", "workspace-write", "--approver-creds", filepath.Join(e.home, "creds", "approver.nk")}
	// Whoever starts it must name a profile that exists: a typo stops it at
	// once rather than refusing every command later.
	bad := e.cmd("moat", "mcp", "--workspace", e.ws, "--profile", "workspace-wirte")
	if got := runCmd(t, bad, ""); got.code != 1 || !strings.Contains(got.stderr, "workspace-wirte") {
		t.Fatalf("moat mcp with an unknown profile: %+v", got)
	}
	var asked atomic.Int32
	s := mcpSession(t, e, func(r *mcp.ElicitRequest) *mcp.ElicitResult {
		asked.Add(1)
		if !strings.Contains(r.Params.Message, "python3 -c") {
			return &mcp.ElicitResult{Action: "decline"}
		}
		return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"note": "looks fine"}}
	}, server...)

	tools, err := s.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	if strings.Join(names, ",") != "audit,check,profiles,run" {
		t.Fatalf("tools: %v", names)
	}

	var r mcpResult
	res := call(t, s, "run", map[string]any{"script": "echo hi > made.txt; cat made.txt; echo err >&2; exit 3"}, &r)
	if res.IsError || r.ExitCode != 3 || r.Stdout != "hi\n" || r.Stderr != "err\n" || r.Refusal != nil || r.Profile != "workspace-write" {
		t.Fatalf("allowed run: %+v\n%s", r, text(res))
	}
	if b, _ := os.ReadFile(filepath.Join(e.ws, "made.txt")); string(b) != "hi\n" {
		t.Fatalf("the run did not write the workspace: %q", b)
	}
	var ids []string
	ids = append(ids, r.RequestID)
	r = mcpResult{}
	call(t, s, "run", map[string]any{"argv": []string{"pwd"}, "cwd": "sub"}, &r)
	if r.Stdout != filepath.Join(e.ws, "sub")+"\n" {
		t.Fatalf("argv with cwd: %+v", r)
	}

	// Output past --max-output is cut on a rune boundary (byte 65536 is the
	// middle of an é) and flagged.
	r = mcpResult{}
	call(t, s, "run", map[string]any{"script": "printf x; yes é | tr -d '\\n' | head -c 100000"}, &r)
	if !r.StdoutTruncated || len(r.Stdout) != 64<<10-1 || !utf8.ValidString(r.Stdout) {
		t.Fatalf("truncation: flag %v, %d bytes", r.StdoutTruncated, len(r.Stdout))
	}

	// A refusal, with its record; nothing ran.
	canary := filepath.Join(outside, "canary")
	r = mcpResult{}
	res = call(t, s, "run", map[string]any{"script": "echo pwned > " + canary}, &r)
	if _, err := os.Stat(canary); err == nil {
		t.Fatal("the refused command wrote outside the workspace")
	}
	if !res.IsError || r.Refusal == nil || r.Refusal.Layer != wire.LayerPolicy || r.Refusal.Rule != "fs.write-outside" || r.Refusal.Kind != wire.RefusedPath || r.ExitCode != 77 || !strings.Contains(text(res), "REFUSED by policy (fs.write-outside)") {
		t.Fatalf("refusal: %+v\n%s", r.Refusal, text(res))
	}
	ids = append(ids, r.RequestID)

	// Approval through elicitation: the person is asked once, and it runs.
	r = mcpResult{}
	res = call(t, s, "run", map[string]any{"script": "python3 -c 'print(6*7)'"}, &r)
	if asked.Load() != 1 || r.Stdout != "42\n" || r.Refusal != nil {
		t.Fatalf("elicited approval: asked %d, %+v\n%s", asked.Load(), r, text(res))
	}
	// A person who declines: it does not run, and the record says so.
	r = mcpResult{}
	res = call(t, s, "run", map[string]any{"script": "perl -e 'open(F, \">declined.txt\")'"}, &r)
	if _, err := os.Stat(filepath.Join(e.ws, "declined.txt")); err == nil || asked.Load() != 2 || r.Refusal == nil || r.Refusal.Rule != "approval.denied" {
		t.Fatalf("declined approval: asked %d, %+v\n%s", asked.Load(), r.Refusal, text(res))
	}

	// check judges without running.
	r = mcpResult{}
	call(t, s, "check", map[string]any{"script": "rm -f made.txt"}, &r)
	if r.Verdict != wire.VerdictAllow {
		t.Fatalf("check: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(e.ws, "made.txt")); err != nil {
		t.Fatal("check ran the command")
	}

	// The bounds: no wider profile, no directory outside the workspace, no
	// argument the schema does not name.
	for _, args := range []map[string]any{
		{"script": "touch wide.txt", "profile": "workspace-net"},
		{"script": "touch wide.txt", "profile": "trusted"},
		{"script": "touch wide.txt", "profile": "danger-full-access"},
		{"script": "touch wide.txt", "cwd": ".."},
		{"script": "touch wide.txt", "cwd": outside},
		{"script": "touch wide.txt", "cwd": "escape"},
		{"script": "touch wide.txt", "cwd": "sub/../../"},
		{"script": "touch wide.txt", "workspace": outside},
		{"script": "touch wide.txt", "argv": []string{"touch", "wide.txt"}},
		{"script": "touch wide.txt", "timeout_ms": -1},
	} {
		res := call(t, s, "run", args, nil)
		if !res.IsError {
			t.Fatalf("run %v was accepted: %s", args, text(res))
		}
		for _, dir := range []string{e.ws, outside} {
			if _, err := os.Stat(filepath.Join(dir, "wide.txt")); err == nil {
				t.Fatalf("run %v wrote %s", args, dir)
			}
		}
	}
	// Nor through moat itself, run from inside: the sandbox has no way to the
	// bus and cannot read moat's keys.
	r = mcpResult{}
	res = call(t, s, "run", map[string]any{"argv": []string{filepath.Join(binDir, "moat"), "run", "--profile", "trusted", "--bus", url,
		"--creds", filepath.Join(e.home, "creds", "client.nk"), "--", "touch", filepath.Join(outside, "wide.txt")}}, &r)
	if _, err := os.Stat(filepath.Join(outside, "wide.txt")); err == nil || (r.ExitCode == 0 && r.Refusal == nil) {
		t.Fatalf("moat run from inside the sandbox: %+v\n%s", r, text(res))
	}
	// A narrower profile is granted, and holds.
	r = mcpResult{}
	res = call(t, s, "run", map[string]any{"script": "touch narrow.txt", "profile": "offline"}, &r)
	if _, err := os.Stat(filepath.Join(e.ws, "narrow.txt")); err == nil || r.Profile != "offline" || r.Refusal == nil {
		t.Fatalf("offline wrote the workspace: %+v\n%s", r, text(res))
	}
	var pl struct {
		Default  string             `json:"default"`
		Profiles []wire.ProfileInfo `json:"profiles"`
	}
	call(t, s, "profiles", nil, &pl)
	var granted []string
	for _, p := range pl.Profiles {
		granted = append(granted, p.Name)
	}
	if pl.Default != "workspace-write" || strings.Join(granted, ",") != "offline,workspace-write" {
		t.Fatalf("profiles: %s %v", pl.Default, granted)
	}

	// Without elicitation, a prompt goes to the bus's approvers.
	plain := mcpSession(t, e, nil, server...)
	approver := dialAs(t, e, url, home.RoleApprover)
	done := make(chan mcpResult, 1)
	go func() {
		var r mcpResult
		call(t, plain, "run", map[string]any{"script": "python3 -c 'print(7*6)'"}, &r)
		done <- r
	}()
	testbin.Eventually(t, 20*time.Second, "the prompt to reach the approvers", func() error {
		l, err := approver.Approvals(context.Background(), 300*time.Millisecond)
		if err != nil {
			return err
		}
		for _, a := range l {
			if strings.Contains(strings.Join(a.Argv, " "), "print(7*6)") {
				_, err := approver.Answer(context.Background(), &wire.ApprovalAnswer{ID: a.ID, Verdict: wire.VerdictAllow, By: "e2e"})
				return err
			}
		}
		return fmt.Errorf("no approval waits: %+v", l)
	})
	if r := <-done; r.Stdout != "42\n" || asked.Load() != 2 {
		t.Fatalf("bus approval: %+v (asked %d)", r, asked.Load())
	}

	// The session's records, and only its own.
	var a struct {
		SessionID string             `json:"session_id"`
		Events    []wire.StoredEvent `json:"events"`
	}
	testbin.Eventually(t, 20*time.Second, "the session's records in the audit trail", func() error {
		call(t, s, "audit", map[string]any{"limit": 200}, &a)
		seen := map[string]bool{}
		for _, ev := range a.Events {
			if ev.Event.SessionID != a.SessionID {
				return fmt.Errorf("another session's record: %+v", ev.Event)
			}
			seen[ev.Event.RequestID+" "+ev.Event.Kind] = true
		}
		for _, want := range []string{ids[0] + " run.decision", ids[0] + " run.exit", ids[1] + " run.decision"} {
			if !seen[want] {
				return fmt.Errorf("no %s among %d records", want, len(a.Events))
			}
		}
		return nil
	})
	var b struct {
		SessionID string `json:"session_id"`
	}
	call(t, plain, "audit", nil, &b)
	if b.SessionID == "" || b.SessionID == a.SessionID {
		t.Fatalf("two MCP sessions share moat session %q", a.SessionID)
	}
}
