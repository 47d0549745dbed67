package cli

import (
	"context"
	"fmt"
	"os/user"
	"strings"
	"time"

	"github.com/moatsec/moat/pkg/wire"
)

// runGrants lists the grants in force (moat grants).
func runGrants(ctx context.Context, e *env, args []string) int {
	fs, js, opts := e.approverFlags("grants")
	c, code := e.connect(ctx, fs, args, opts)
	if c == nil {
		return code
	}
	defer c.Close()
	l, err := c.Grants(ctx)
	if err != nil {
		return e.fail(err)
	}
	return list(e, *js, l, "no grants in force", "ID\tBY\tAT\tWORKSPACE\tPROFILE\tCOMMAND\tTERMS", func(g *wire.Grant) string {
		cmd := strings.Join(g.Argv, " ")
		if g.Prefix {
			cmd += " …"
		}
		return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s", g.ID, g.By, g.At.Local().Format(time.DateTime), g.Workspace, g.Profile, cmd, grantTerms(g))
	}, "\nend one with: moat revoke ID")
}

// grantTerms says how long a grant lasts: uses left, expiry, session.
func grantTerms(g *wire.Grant) string {
	var t []string
	if g.Uses > 0 {
		t = append(t, fmt.Sprintf("%d uses left", g.Uses))
	}
	if g.SessionID != "" {
		t = append(t, "session "+g.SessionID)
	}
	if !g.ExpiresAt.IsZero() {
		t = append(t, "until "+g.ExpiresAt.Local().Format(time.DateTime))
	} else if g.Uses == 0 {
		t = append(t, "until revoked")
	}
	return strings.Join(t, ", ")
}

// runRevoke ends a grant (moat revoke ID).
func runRevoke(ctx context.Context, e *env, args []string) int {
	fs, js, opts := e.approverFlags("revoke")
	reason := fs.String("reason", "", "why, for the record")
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		args = append(append([]string{}, args[1:]...), args[0]) // moat revoke ID --reason …
	}
	if code, ok := Parse(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(e.stderr, "moat revoke: give one grant id (moat grants lists them)")
		return ExitUsage
	}
	c, ok := e.dial(ctx, opts)
	if !ok {
		return ExitError
	}
	defer c.Close()
	by := "unknown"
	if u, err := user.Current(); err == nil {
		by = u.Username
	}
	ack, err := c.Revoke(ctx, &wire.RevokeRequest{ID: fs.Arg(0), By: by, Reason: *reason})
	if err != nil {
		return e.fail(err)
	}
	if *js {
		return e.json(ack)
	}
	fmt.Fprintf(e.stdout, "grant %s: revoked\n", ack.ID)
	return ExitOK
}
