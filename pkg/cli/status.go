package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/moatsec/moat/pkg/wire"
)

func runStatus(ctx context.Context, e *env, args []string) int {
	fs, js, opts := e.flags("status", true)
	wait := fs.Duration("wait", 300*time.Millisecond, "how long to collect answers to the ping")
	c, code := e.connect(ctx, fs, args, opts)
	if c == nil {
		return code
	}
	defer c.Close()
	st, err := c.Status(ctx, *wait)
	if err != nil {
		return e.fail(err)
	}
	code = ExitOK
	if len(st.Missing) > 0 || !serversWhole(st.Servers) {
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
	printServers(e, st.Servers)
	if a := st.Audit; a != nil {
		if a.Error != "" {
			fmt.Fprintf(e.stdout, "\naudit stream: %s\n", a.Error)
		} else {
			fmt.Fprintf(e.stdout, "\naudit stream: %d messages not yet stored by auditd (%s)\n", a.Messages, bytes(int64(a.Bytes)))
		}
	}
	return code
}

// printServers shows each busd (routes, leaves, JetStream role) and every
// stream's copies, as the meta leader (or a lone server) sees them.
func printServers(e *env, servers []wire.BusServer) {
	if len(servers) == 0 {
		return
	}
	fmt.Fprintln(e.stdout)
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVER\tROLE\tCLUSTER\tROUTES\tLEAVES\tCONNS\tSLOW\tJETSTREAM")
	var streams []wire.StreamReplica
	for _, b := range servers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", b.Name, b.Role, dash(b.Cluster), dash(strings.Join(b.Routes, ",")),
			dash(strings.Join(b.Leaves, ",")), b.Connections, b.SlowConsumers, b.JetStream)
		if streams == nil {
			streams = b.Streams
		}
	}
	tw.Flush()
	if len(streams) == 0 {
		return
	}
	fmt.Fprintln(e.stdout)
	tw = tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tREPLICAS\tMESSAGES\tLEADER\tOTHER COPIES")
	for _, s := range streams {
		var peers []string
		for _, p := range s.Peers {
			state := "current"
			switch {
			case p.Offline:
				state = "offline"
			case !p.Current:
				state = fmt.Sprintf("behind by %d", p.Lag)
			}
			peers = append(peers, p.Name+" "+state)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", s.Name, s.Replicas, s.Messages, dash(s.Leader), dash(strings.Join(peers, ", ")))
	}
	tw.Flush()
}

// serversWhole: no server without a JetStream leader, and every stream's
// copies current.
func serversWhole(servers []wire.BusServer) bool {
	for _, b := range servers {
		if b.JetStream == "no-leader" {
			return false
		}
		for _, s := range b.Streams {
			if s.Replicas > 1 && s.Leader == "" {
				return false
			}
			for _, p := range s.Peers {
				if p.Offline || !p.Current {
					return false
				}
			}
		}
	}
	return true
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
