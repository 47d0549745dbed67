package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/moatsec/moat/pkg/audit"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/truncate"
	"github.com/moatsec/moat/pkg/wire"
)

const auditUsage = `usage: moat audit SUBCOMMAND [flags]

subcommands:
  query    print stored events that match the filters (--limit in all, then a cursor to go on)
  tail     print stored events and keep printing new ones (query -f)
  verify   check the whole store: frames, hash chain, signed checkpoints, the anchor, open runs
  stats    the store's size, its compression and the events not yet stored
  export   every stored event as JSON lines, oldest first
  hash     the token a user name has in the audit trail: moat audit hash NAME

run ` + "`moat audit SUBCOMMAND -h`" + ` for a subcommand's flags`

func runAudit(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(e.stderr, auditUsage)
		return ExitUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprintln(e.stdout, auditUsage)
		return ExitOK
	case "query", "tail":
		return auditQuery(ctx, e, args[0], args[1:])
	case "verify":
		return auditVerify(ctx, e, args[1:])
	case "stats":
		return auditStats(ctx, e, args[1:])
	case "export":
		return auditExport(ctx, e, args[1:])
	case "hash":
		return auditHash(e, args[1:])
	}
	fmt.Fprintf(e.stderr, "moat audit: unknown subcommand %q: want query, tail, verify, stats, export or hash\n", args[0])
	return ExitUsage
}

func auditQuery(ctx context.Context, e *env, name string, args []string) int {
	fs, js, opts := e.flags("audit "+name, true)
	var q wire.AuditQuery
	var since, until string
	follow := fs.Bool("f", name == "tail", "keep printing new events")
	fs.StringVar(&q.SessionID, "session", "", "session id")
	fs.StringVar(&q.RequestID, "request", "", "request id")
	fs.StringVar(&q.Kind, "kind", "", "event kind (run.exit, policy.decision, profile.resolved, …)")
	fs.StringVar(&q.Verdict, "verdict", "", "allow, prompt or deny")
	fs.StringVar(&q.Profile, "profile", "", "profile name")
	fs.StringVar(&q.Text, "text", "", "text in the command, cwd, reasons or details")
	fs.StringVar(&since, "since", "", "RFC 3339 time or a duration ago (1h)")
	fs.StringVar(&until, "until", "", "RFC 3339 time or a duration ago")
	limit := fs.Int("limit", 50, "events to print in all, then the cursor to go on from (-f prints every event)")
	fs.Uint64Var(&q.Cursor, "cursor", 0, "continue after this seq")
	if code, ok := Parse(fs, args); !ok {
		return code
	}
	var err error
	if q.Since, err = audit.ParseTime(since, time.Now()); err != nil {
		return e.fail(err)
	}
	if q.Until, err = audit.ParseTime(until, time.Now()); err != nil {
		return e.fail(err)
	}
	c, ok := e.dial(ctx, opts)
	if !ok {
		return ExitError
	}
	defer c.Close()
	if *limit <= 0 {
		fmt.Fprintf(e.stderr, "moat audit %s: --limit must be at least 1\n", name)
		return ExitUsage
	}
	header := !*js
	printed := 0
	for {
		q.Limit = min(wire.MaxAuditPage, *limit-printed)
		if *follow {
			q.Limit = wire.MaxAuditPage
		}
		res, err := c.AuditQuery(ctx, &q)
		if err != nil {
			return e.fail(err)
		}
		if *js {
			enc := json.NewEncoder(e.stdout)
			for _, ev := range res.Events {
				enc.Encode(ev)
			}
		} else {
			printEvents(e, res.Events, header)
			header = header && len(res.Events) == 0
		}
		printed += len(res.Events)
		if len(res.Events) > 0 {
			q.Cursor = res.Events[len(res.Events)-1].Seq
		}
		more := res.Next != 0
		if more && (printed < *limit || *follow) {
			continue
		}
		if !*follow {
			if !*js && more {
				fmt.Fprintf(e.stdout, "(more: --cursor %d)\n", q.Cursor)
			}
			return ExitOK
		}
		select {
		case <-ctx.Done():
			return ExitOK
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func printEvents(e *env, evs []wire.StoredEvent, header bool) {
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	if header {
		fmt.Fprintln(tw, "SEQ\tTIME\tKIND\tVERDICT\tPROFILE\tCOMMAND\tDETAIL")
	}
	for _, s := range evs {
		ev := s.Event
		detail := ""
		if ev.ExitCode != nil {
			detail = fmt.Sprintf("exit %d", *ev.ExitCode)
		} else if len(ev.Reasons) > 0 {
			detail = ev.Reasons[0].Rule
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Seq, ev.TS.Local().Format("15:04:05.000"), ev.Kind, ev.Verdict, ev.Profile, short(strings.Join(ev.Argv, " ")), detail)
	}
	tw.Flush()
}

func short(s string) string { return truncate.String(s, 60) }

func auditVerify(ctx context.Context, e *env, args []string) int {
	fs, js, opts := e.flags("audit verify", true)
	c, code := e.connect(ctx, fs, args, opts)
	if c == nil {
		return code
	}
	defer c.Close()
	rep, err := c.AuditVerify(ctx)
	if err != nil {
		return e.fail(err)
	}
	if *js {
		e.json(rep)
	} else if rep.OK {
		anchor := "no anchor kept yet"
		if rep.AnchorSize > 0 {
			anchor = fmt.Sprintf("reaches its anchor (%d records)", rep.AnchorSize)
		}
		fmt.Fprintf(e.stdout, "OK: %d records (%d to %d) in %d segments, %d signed checkpoints; %s\n", rep.Records, rep.FirstSeq, rep.LastSeq, rep.Segments, rep.Checkpoints, anchor)
	} else {
		fmt.Fprintf(e.stdout, "FAILED after %d good records: %v\n", rep.Records, rep.Problem)
	}
	if !rep.OK {
		return ExitError
	}
	return ExitOK
}

func auditStats(ctx context.Context, e *env, args []string) int {
	fs, js, opts := e.flags("audit stats", true)
	c, code := e.connect(ctx, fs, args, opts)
	if c == nil {
		return code
	}
	defer c.Close()
	st, err := c.AuditStats(ctx)
	if err != nil {
		return e.fail(err)
	}
	if *js {
		return e.json(st)
	}
	fmt.Fprintf(e.stdout, "records  %d in %d segments, %s on disk (%.1fx smaller than JSON lines)\nlag      %d messages in the stream not yet stored\nhead     %s (seq %d)\n",
		st.Records, st.Segments, bytes(st.DiskBytes), st.Ratio, st.Lag, st.Head, st.LastSeq)
	if st.Problem != "" {
		fmt.Fprintf(e.stdout, "READ-ONLY %s\n", st.Problem)
		return ExitError
	}
	return ExitOK
}

func auditExport(ctx context.Context, e *env, args []string) int {
	// No --json: the export is JSON lines already.
	fs := flag.NewFlagSet("moat audit export", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	opts := clientFlags(fs, home.RoleClient)
	format := fs.String("format", "jsonl", "jsonl (one event per line)")
	if code, ok := Parse(fs, args); !ok {
		return code
	}
	if *format != "jsonl" {
		fmt.Fprintf(e.stderr, "moat audit export: format %q: only jsonl\n", *format)
		return ExitUsage
	}
	c, ok := e.dial(ctx, opts)
	if !ok {
		return ExitError
	}
	defer c.Close()
	enc := json.NewEncoder(e.stdout)
	q := wire.AuditQuery{Limit: wire.MaxAuditPage}
	for {
		res, err := c.AuditQuery(ctx, &q)
		if err != nil {
			return e.fail(err)
		}
		for i := range res.Events {
			enc.Encode(&res.Events[i].Event)
		}
		if res.Next == 0 {
			return ExitOK
		}
		q.Cursor = res.Next
	}
}

func auditHash(e *env, args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(e.stderr, "usage: moat audit hash NAME  (the token NAME has in the audit trail)")
		return ExitUsage
	}
	h, err := home.FromEnv()
	if err != nil {
		return e.fail(err)
	}
	san, err := audit.LoadSanitizer(h.HMACKey())
	if err != nil {
		return e.fail(err)
	}
	fmt.Fprintln(e.stdout, san.UserToken(args[0]))
	return ExitOK
}
