// Command moat-rules is `moat rules`: rules files checked as `codex
// execpolicy check` does (see docs/policy.md). moat replaces itself with
// this program, which must sit next to it (`go install ./cmd/...` installs
// both); `moat-rules ARGS` is `moat rules ARGS`.
package main

import (
	"os"

	"github.com/moatsec/moat/pkg/cli/rules"
)

func main() {
	os.Exit(rules.Main(os.Args[1:], os.Stdout, os.Stderr))
}
