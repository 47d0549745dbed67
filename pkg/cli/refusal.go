package cli

import (
	"fmt"
	"io"

	"github.com/moatsec/moat/pkg/wire"
)

// printRefusal tells a person (or a model reading stderr) why moat did not
// run a command or stopped it, and what would allow it.
func printRefusal(w io.Writer, r *wire.Refusal) {
	if r == nil {
		return
	}
	switch r.Layer { // one line a kind or path: the sentence says no more
	case wire.LayerSeccomp:
		for _, d := range r.Syscalls {
			fmt.Fprintf(w, "moat: %s\n", d.Line(r.Source))
		}
		return
	case wire.LayerFS:
		for _, d := range r.Paths {
			fmt.Fprintf(w, "moat: %s\n", d.Line(r.Source))
		}
		return
	}
	fmt.Fprintf(w, "moat: refused by %s", r.Layer)
	if r.Rule != "" {
		fmt.Fprintf(w, " (%s)", r.Rule)
	}
	fmt.Fprintf(w, ": %s\n", r.Message)
	if r.Allow.Approval {
		fmt.Fprintln(w, "  allowed by: a person's approval (moat approvals, moat approve ID)")
	}
	if r.Allow.Profile != "" {
		fmt.Fprintf(w, "  allowed by: profile %s\n", r.Allow.Profile)
	}
	if r.Allow.Limit != "" {
		fmt.Fprintf(w, "  allowed by: a higher %s limit ([limits] in profiles.toml)\n", r.Allow.Limit)
	}
}

// CheckOf is the dry-run question a run request asks, for client.Explain.
func CheckOf(req *wire.RunRequest) wire.CheckRequest {
	return wire.CheckRequest{SessionID: req.SessionID, Argv: req.Argv, Cwd: req.Cwd, Workspace: req.Workspace, Profile: wire.RefName(req.Profile), Env: req.Env}
}
