// Command moat is the client of the moat stack: init, profiles, resolve,
// check, run, approvals, approve, deny, status. `moat mcp` and `moat rules`
// are the programs moat-mcp and moat-rules, installed next to it: moat
// replaces itself with them, so it links neither the MCP SDK nor the policy
// engine (pkg/cli).
package main

import (
	"context"
	"os"

	"github.com/moatsec/moat/pkg/cli"
)

func main() {
	cli.OneThread()
	ctx, stop := cli.SignalContext(context.Background())
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
