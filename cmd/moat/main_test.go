package main

import (
	"regexp"
	"testing"

	"github.com/moatsec/moat/test/testbin"
)

// lean are what `moat mcp` and `moat rules` need and moat must not link:
// agents start moat once per command, and linking these cost each command
// 0.5 to 1 ms of CPU at start-up. Those commands are moat-mcp and
// moat-rules (pkg/cli/mcpserver, pkg/cli/rules), which moat execs.
var lean = regexp.MustCompile(`modelcontextprotocol/go-sdk|google/jsonschema-go|^go\.starlark\.net/|^mvdan\.cc/sh/|BurntSushi/toml|moat/pkg/(policy|egress)$|moat/pkg/cli/(mcpserver|rules)$`)

// TestLean: moat links none of lean.
func TestLean(t *testing.T) {
	if bad := testbin.LinkedMatching(t, lean); len(bad) > 0 {
		t.Fatalf("moat links %v: keep them out of pkg/cli's imports (moat-mcp and moat-rules have them)", bad)
	}
}
