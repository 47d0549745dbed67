package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/policy"
)

// runRules is `moat rules check FILE… -- ARGV`: Codex's `codex execpolicy
// check`, answered by moat's reading of the same files, in the same JSON, so
// a person can compare the two. It runs locally: no bus, no profile, none of
// moat's built-in rules (moat check gives the whole decision).
func runRules(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprintln(e.stderr, "usage: moat rules check [--pretty] [--resolve-host-executables] [FILE|DIR…] -- COMMAND…\n\n"+
			"Prints what `codex execpolicy check --rules FILE… COMMAND…` prints for the same files.\n"+
			"Without FILE, MOAT_HOME/rules. Parts of a file moat uses only in part are named on stderr.")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return ExitOK
		}
		return ExitUsage
	}
	fs := flag.NewFlagSet("moat rules check", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	pretty := fs.Bool("pretty", false, "indent the JSON")
	resolve := fs.Bool("resolve-host-executables", false, "let an absolute program path match rules for its base name, as host_executable permits")
	rest := args[1:]
	dash := slices.Index(rest, "--")
	if dash < 0 {
		fmt.Fprintln(e.stderr, "moat rules check: give the command after --, e.g. moat rules check default.rules -- git push origin")
		return ExitUsage
	}
	if code, ok := parse(fs, rest[:dash]); !ok {
		return code
	}
	files, argv := fs.Args(), rest[dash+1:]
	if len(argv) == 0 {
		fmt.Fprintln(e.stderr, "moat rules check: the command after -- is empty")
		return ExitUsage
	}
	if len(files) == 0 {
		h, err := home.FromEnv()
		if err != nil {
			return e.fail(err)
		}
		files = []string{h.RulesDir()}
	}
	rs, err := policy.LoadRules(files...)
	if err != nil {
		return e.fail(fmt.Errorf("rules not loaded: %w", err))
	}
	for _, n := range rs.Notices() {
		fmt.Fprintf(e.stderr, "moat: note: %s\n", n)
	}
	userHome, _ := os.UserHomeDir()
	ev := rs.Check(argv, *resolve, userHome)
	var b []byte
	if *pretty {
		b, err = json.MarshalIndent(ev, "", "  ")
	} else {
		b, err = json.Marshal(ev)
	}
	if err != nil {
		return e.fail(err)
	}
	fmt.Fprintln(e.stdout, string(b))
	return ExitOK
}
