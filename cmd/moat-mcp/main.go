// Command moat-mcp is `moat mcp`: an MCP server on stdio for agents (see
// docs/integrations.md). moat replaces itself with this program, which must
// sit next to it (`go install ./cmd/...` installs both); `moat-mcp ARGS`
// is `moat mcp ARGS`.
package main

import (
	"context"
	"os"

	"github.com/moatsec/moat/pkg/cli"
	"github.com/moatsec/moat/pkg/cli/mcpserver"
)

func main() {
	cli.OneThread()
	ctx, stop := cli.SignalContext(context.Background())
	code := mcpserver.Main(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}
