// Package rules is `moat rules`, the program moat-rules (cmd/moat-rules). It
// is a program of its own so that moat, which agents start once per
// command, links none of the policy engine it runs (Starlark, the shell
// parser, TOML); moat replaces itself with moat-rules for `moat rules`
// (pkg/cli).
package rules

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/moatsec/moat/pkg/cli"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/policy"
)

// Main is `moat rules check FILE… -- ARGV`, given the arguments that follow
// `rules`, and returns its exit code: Codex's `codex execpolicy check`,
// answered by moat's reading of the same files, in the same JSON, so a
// person can compare the two. It runs locally: no bus, no profile, none of
// moat's built-in rules (moat check gives the whole decision).
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprintln(stderr, "usage: moat rules check [--pretty] [--resolve-host-executables] [FILE|DIR…] -- COMMAND…\n\n"+
			"Prints what `codex execpolicy check --rules FILE… COMMAND…` prints for the same files.\n"+
			"Without FILE, MOAT_HOME/rules. Parts of a file moat uses only in part are named on stderr.")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return cli.ExitOK
		}
		return cli.ExitUsage
	}
	fs := flag.NewFlagSet("moat rules check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pretty := fs.Bool("pretty", false, "indent the JSON")
	resolve := fs.Bool("resolve-host-executables", false, "let an absolute program path match rules for its base name, as host_executable permits")
	rest := args[1:]
	dash := slices.Index(rest, "--")
	if dash < 0 {
		fmt.Fprintln(stderr, "moat rules check: give the command after --, e.g. moat rules check default.rules -- git push origin")
		return cli.ExitUsage
	}
	if code, ok := cli.Parse(fs, rest[:dash]); !ok {
		return code
	}
	files, argv := fs.Args(), rest[dash+1:]
	if len(argv) == 0 {
		fmt.Fprintln(stderr, "moat rules check: the command after -- is empty")
		return cli.ExitUsage
	}
	if len(files) == 0 {
		h, err := home.FromEnv()
		if err != nil {
			return cli.Fail(stderr, err)
		}
		files = []string{h.RulesDir()}
	}
	rs, err := policy.LoadRules(files...)
	if err != nil {
		return cli.Fail(stderr, fmt.Errorf("rules not loaded: %w", err))
	}
	for _, n := range rs.Notices() {
		fmt.Fprintf(stderr, "moat: note: %s\n", n)
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
		return cli.Fail(stderr, err)
	}
	fmt.Fprintln(stdout, string(b))
	return cli.ExitOK
}
