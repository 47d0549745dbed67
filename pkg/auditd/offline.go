package auditd

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/moatsec/moat/pkg/audit"
	"github.com/moatsec/moat/pkg/audit/store"
	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
)

// Offline runs `auditd verify|export|query --dir DIR`: the store read
// straight from disk, with no bus. It returns the exit status (verify: 1
// when the store does not verify).
func Offline(cmd string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("auditd "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "store directory (default MOAT_HOME/audit)")
	anchorFrom := ""
	if cmd == "verify" {
		fs.StringVar(&anchorFrom, "anchor", "", "check the store reaches this checkpoint: a JSON file, a directory holding checkpoint.json (auditd --anchor-dir), or \"bus\" for the one busd keeps (MOAT_BUS, the auditd key)")
	}
	var q wire.AuditQuery
	var since, until string
	if cmd == "query" {
		fs.StringVar(&q.SessionID, "session", "", "session id")
		fs.StringVar(&q.RequestID, "request", "", "request id")
		fs.StringVar(&q.Kind, "kind", "", "event kind (run.exit, policy.decision, …)")
		fs.StringVar(&q.Verdict, "verdict", "", "allow, prompt or deny")
		fs.StringVar(&q.Profile, "profile", "", "profile name")
		fs.StringVar(&q.Text, "text", "", "text in the command, cwd, reasons or details")
		fs.StringVar(&since, "since", "", "RFC 3339 time or a duration ago (1h)")
		fs.StringVar(&until, "until", "", "RFC 3339 time or a duration ago")
		fs.IntVar(&q.Limit, "limit", 100, "events per page")
		fs.Uint64Var(&q.Cursor, "cursor", 0, "continue after this seq")
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(err error) int { fmt.Fprintf(stderr, "auditd %s: %v\n", cmd, err); return 1 }
	h, err := home.FromEnv()
	if err != nil {
		return fail(err)
	}
	if *dir == "" {
		*dir = h.AuditDir()
	}
	enc := json.NewEncoder(stdout)
	switch cmd {
	case "verify":
		var pub ed25519.PublicKey
		if key, err := store.LoadSigningKey(h.SigningKey()); err == nil {
			pub = key.Public().(ed25519.PublicKey)
		} else {
			fmt.Fprintln(stderr, "auditd verify: no signing key, checkpoint signatures not checked:", err)
		}
		anchor, err := readAnchor(anchorFrom, h)
		if err != nil {
			return fail(err)
		}
		rep, err := store.Verify(*dir, pub, anchor)
		if err != nil {
			return fail(err)
		}
		enc.SetIndent("", "  ")
		enc.Encode(rep)
		if !rep.OK {
			fmt.Fprintf(stderr, "auditd verify: FAILED at %v\n", rep.Problem)
			return 1
		}
		return 0
	}
	store, err := store.OpenReadOnly(*dir)
	if err != nil {
		return fail(err)
	}
	if cmd == "export" {
		if err := store.Export(stdout); err != nil {
			return fail(err)
		}
		return 0
	}
	if q.Since, err = audit.ParseTime(since, time.Now()); err != nil {
		return fail(err)
	}
	if q.Until, err = audit.ParseTime(until, time.Now()); err != nil {
		return fail(err)
	}
	res, err := store.Query(q)
	if err != nil {
		return fail(err)
	}
	enc.SetIndent("", "  ")
	enc.Encode(res)
	return 0
}

// readAnchor reads the anchor verify was given: a file or directory, or
// "bus" for the bucket busd keeps (read with the auditd key).
func readAnchor(from string, h home.Home) (*store.Checkpoint, error) {
	switch from {
	case "":
		return nil, nil
	case "bus":
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		o := client.Options{Role: home.RoleAuditd, Creds: h.Creds(home.RoleAuditd)}.Fill(h)
		c, err := client.Dial(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("read the anchor from the bus: %w", err)
		}
		defer c.Close()
		a, err := OpenAnchor(ctx, c.Conn(), "", nil)
		if err != nil {
			return nil, err
		}
		cp, err := a.Get(ctx)
		if err == nil && cp == nil {
			err = fmt.Errorf("the bus keeps no anchor yet (%s is empty)", wire.AuditAnchorBucket)
		}
		return cp, err
	}
	return store.ReadAnchorFile(from)
}
