// Command moat-sandbox-helper is the sandbox helper: sandboxd starts it in
// fresh namespaces, hands it a run's configuration, and it builds the
// sandbox around itself, executes the command and stays its init (PID 1).
// It is a binary of its own so that each run starts only what isolation
// needs: it links pkg/sandbox/inside, none of the bus, policy, egress or
// key packages sandboxd links. sandboxd runs it from its own directory;
// started any other way it exits 2.
package main

import (
	"fmt"
	"os"

	"github.com/moatsec/moat/pkg/sandbox/inside"
)

func main() {
	inside.Main() // as the helper, this never returns
	fmt.Fprintln(os.Stderr, "moat-sandbox-helper: only sandboxd starts this program (it builds one run's sandbox)")
	os.Exit(2)
}
