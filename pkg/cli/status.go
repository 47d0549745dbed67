package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"
)

func runStatus(ctx context.Context, e *env, args []string) int {
	fs, js, opts := e.flags("status", true)
	wait := fs.Duration("wait", 300*time.Millisecond, "how long to collect answers to the ping")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	c, ok := e.dial(ctx, opts)
	if !ok {
		return ExitError
	}
	defer c.Close()
	st, err := c.Status(ctx, *wait)
	if err != nil {
		return e.fail(err)
	}
	code := ExitOK
	if len(st.Missing) > 0 {
		code = ExitDegraded
	}
	if *js {
		e.json(st)
		return code
	}
	fmt.Fprintf(e.stdout, "bus  %s (nats-server %s)\n\n", st.Bus, st.Server)
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tCOPIES\tVERSION\tINSTANCES")
	for _, s := range st.Services {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", s.Name, s.Instances, strings.Join(s.Versions, ","), strings.Join(s.IDs, " "))
	}
	for _, m := range st.Missing {
		fmt.Fprintf(tw, "%s\t0\t-\tmissing: not answering $SRV.PING\n", m)
	}
	tw.Flush()
	if a := st.Audit; a != nil {
		if a.Error != "" {
			fmt.Fprintf(e.stdout, "\naudit stream: %s\n", a.Error)
		} else {
			fmt.Fprintf(e.stdout, "\naudit stream: %d events not yet stored by auditd (%s)\n", a.Messages, bytes(int64(a.Bytes)))
		}
	}
	return code
}
