package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// The programs that answer `moat mcp` and `moat rules`. Agents start moat
// once per command (moat run, moat sh, moat hook), so moat links only what
// those commands need: the MCP SDK, and the policy engine that `moat rules`
// runs locally (Starlark, the shell parser, TOML), live in programs of their
// own, next to moat (cmd/moat-mcp, cmd/moat-rules; `go install ./cmd/...`
// installs them all). Each takes the arguments that follow its command word:
// `moat-mcp ARGS` is `moat mcp ARGS`.
const (
	MCPProgram   = "moat-mcp"
	RulesProgram = "moat-rules"
)

// sibling is a command answered by program: moat replaces itself with it
// (execve), passing the arguments after the command word and the
// environment unchanged, so the standard streams, signals, process id and
// exit status are the program's own. Without it next to moat, moat says
// what to install.
func sibling(command, program string) func(ctx context.Context, e *env, args []string) int {
	return func(_ context.Context, e *env, args []string) int {
		path, err := findSibling(command, program)
		if err != nil {
			return e.fail(err)
		}
		err = syscall.Exec(path, append([]string{path}, args...), os.Environ())
		return e.fail(fmt.Errorf("start %s: %w", path, err)) // Exec returns only when it fails
	}
}

// findSibling finds program in the directory of moat's own executable
// (links resolved), and only there: never through PATH, whose directories
// may be ones an agent writes (a workspace's node_modules/.bin), so a
// planted moat-mcp would run unconfined, with the approver key moat mcp may
// be given.
func findSibling(command, program string) (string, error) {
	self, err := os.Executable()
	if err == nil {
		self, err = filepath.EvalSymlinks(self)
	}
	if err != nil {
		return "", fmt.Errorf("moat %s is the program %s next to moat, but moat cannot find its own executable: %v", command, program, err)
	}
	here := filepath.Dir(self)
	if p := filepath.Join(here, program); isExecutable(p) {
		return p, nil
	}
	return "", fmt.Errorf("moat %s is the program %s, which is not in %s, next to moat (moat does not look for it on PATH): "+
		"install moat's programs together, e.g. `go install ./cmd/...` from moat's source, or `scripts/build DIR` and run DIR/moat", command, program, here)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
