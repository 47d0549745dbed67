package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/moatsec/moat/pkg/wire"
)

func runProfiles(ctx context.Context, e *env, args []string) int {
	fs, js, opts := e.flags("profiles", true)
	c, code := e.connect(ctx, fs, args, opts)
	if c == nil {
		return code
	}
	defer c.Close()
	l, err := c.Profiles(ctx)
	if err != nil {
		return e.fail(err)
	}
	if *js {
		return e.json(l)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROFILE\tWRITE\tNETWORK\tCACHES\tENABLED\tALIASES\tDESCRIPTION")
	for _, p := range l.Profiles {
		name := p.Name
		if name == l.Default {
			name += " (default)"
		}
		enabled := "yes"
		if !p.Enabled {
			enabled = "no"
		}
		caches := join(p.Caches)
		if len(p.Caches) > 0 {
			caches = strings.Join(p.Caches, ",") + " (" + p.CacheScope + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, p.Write, p.Network, caches, enabled, join(p.Aliases), p.Description)
	}
	tw.Flush()
	for _, p := range l.Profiles {
		if p.Base != "trusted" {
			fmt.Fprintf(e.stdout, "\n%s reads the system, its workspace and write roots, and: %s\n", p.Name, join(p.Read))
		}
		if len(p.NetAllow) > 0 {
			fmt.Fprintf(e.stdout, "\n%s may reach: %s\n", p.Name, strings.Join(p.NetAllow, ", "))
		}
		if len(p.NetDeny) > 0 {
			fmt.Fprintf(e.stdout, "%s may never reach: %s\n", p.Name, strings.Join(p.NetDeny, ", "))
		}
	}
	return ExitOK
}

func runResolve(ctx context.Context, e *env, args []string) int {
	fs, js, opts := e.flags("resolve", true)
	name := fs.String("profile", "", "profile name or alias (default offline)")
	ws := fs.String("workspace", "", "workspace directory (default the current directory)")
	cwd := fs.String("cwd", "", "working directory inside the workspace (default the workspace)")
	if code, ok := Parse(fs, args); !ok {
		return code
	}
	workspace, err := absOrCwd(*ws)
	if err != nil {
		return e.fail(err)
	}
	c, ok := e.dial(ctx, opts)
	if !ok {
		return ExitError
	}
	defer c.Close()
	p, err := c.Resolve(ctx, &wire.ResolveRequest{Profile: *name, Workspace: workspace, Cwd: absIfSet(*cwd)})
	if err != nil {
		return e.fail(err)
	}
	if *js {
		return e.json(p)
	}
	printProfile(e, p)
	return ExitOK
}

func printProfile(e *env, p *wire.Profile) {
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "profile\t%s (base %s, from %s)\n", p.Name, p.Base, p.Source)
	fmt.Fprintf(tw, "workspace\t%s\n", p.Workspace)
	fmt.Fprintf(tw, "cwd\t%s\n", p.Cwd)
	fmt.Fprintf(tw, "write\t%s\n", orNothing(p.FS.Write, "nothing but a private /tmp"))
	caches := make([]string, 0, len(p.Caches))
	for _, c := range p.Caches {
		caches = append(caches, c.Name+": "+c.Dir)
	}
	fmt.Fprintf(tw, "caches\t%s\n", orNothing(caches, "-"))
	fmt.Fprintf(tw, "write deny\t%s\n", orNothing(p.FS.WriteDeny, "-"))
	if len(p.FS.WriteDenyGlobs) > 0 {
		fmt.Fprintf(tw, "write deny patterns\t%s\n", orNothing(p.FS.WriteDenyGlobs, "-"))
	}
	if p.GuardsWorkspace() {
		var guarded []string
		for _, g := range wire.Guarded {
			if !slices.Contains(p.FS.Unguarded, g) {
				guarded = append(guarded, g)
			}
		}
		fmt.Fprintf(tw, "guarded\tat the workspace's top and each repository's in it:\n\t%s\n", orNothing(guarded, "-"))
	}
	if p.Base == "trusted" {
		fmt.Fprintf(tw, "read\teverything but the read deny\n")
	} else {
		fmt.Fprintf(tw, "read\tthe system, the workspace, the write roots, and\n\t%s\n", orNothing(p.FS.Read, "-"))
	}
	fmt.Fprintf(tw, "read deny\t%s\n", orNothing(p.FS.ReadDeny, "-"))
	net := p.Net.Mode
	if p.Net.Mode == wire.NetAllowlist {
		net += ": " + strings.Join(p.Net.Allow, ", ")
	}
	fmt.Fprintf(tw, "network\t%s\n", net)
	if len(p.Net.Deny) > 0 {
		fmt.Fprintf(tw, "network deny\t%s\n", strings.Join(p.Net.Deny, ", "))
	}
	l := p.Limits
	fmt.Fprintf(tw, "limits\ttimeout %s, memory %s, pids %d, cpu %s, output %s, file %s\n",
		time.Duration(l.TimeoutMS)*time.Millisecond, bytes(l.MemoryBytes), l.Pids,
		time.Duration(l.CPUMS)*time.Millisecond, bytes(l.OutputBytes), bytes(l.FileBytes))
	set := make([]string, 0, len(p.Env.Set))
	for k, v := range p.Env.Set {
		set = append(set, k+"="+v)
	}
	fmt.Fprintf(tw, "env\tpass %s; set %s\n", join(p.Env.Pass), join(set))
	if len(p.NarrowedBy) > 0 {
		fmt.Fprintf(tw, "narrowed by\t%s\n", strings.Join(p.NarrowedBy, ", "))
	}
	tw.Flush()
}

func orNothing(l []string, none string) string {
	if len(l) == 0 {
		return none
	}
	return strings.Join(l, "\n\t")
}

func bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// absOrCwd makes dir absolute, defaulting to the current directory.
func absOrCwd(dir string) (string, error) {
	if dir == "" {
		return os.Getwd()
	}
	return filepath.Abs(dir)
}

func absIfSet(dir string) string {
	if dir == "" {
		return ""
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return dir
	}
	return abs
}
