package cli_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/moatsec/moat/pkg/cli"
)

// TestSiblingMissing: without moat-mcp or moat-rules next to moat or on
// PATH, moat mcp and moat rules fail with the generic error code and say
// what to install; moat -h still lists both.
func TestSiblingMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // the test binary's own directory has neither
	for _, c := range []struct{ command, program string }{{"mcp", cli.MCPProgram}, {"rules", cli.RulesProgram}} {
		code, stdout, stderr := moat(c.command, "-h")
		if code != cli.ExitError || stdout != "" || !strings.Contains(stderr, "moat "+c.command+" is the program "+c.program) ||
			!strings.Contains(stderr, "go install ./cmd/...") {
			t.Errorf("moat %s without %s: exit %d, stdout %q, stderr %q", c.command, c.program, code, stdout, stderr)
		}
	}
	code, _, stderr := moat("-h")
	if code != cli.ExitOK || !strings.Contains(stderr, "\n  mcp ") || !strings.Contains(stderr, "\n  rules ") {
		t.Errorf("moat -h: exit %d, does not list mcp and rules:\n%s", code, stderr)
	}
}

// TestSiblingExec: moat rules replaces moat with moat-rules found on PATH
// (here a shell script, builtins only): the same process, the arguments after `rules`
// and the environment unchanged, standard input passed, its exit status
// moat's. The test runs itself as the moat that execs.
func TestSiblingExec(t *testing.T) {
	if os.Getenv("MOAT_TEST_SIBLING_CHILD") != "" {
		code := cli.Main(context.Background(), []string{"rules", "check", "two words", "--", "x"}, os.Stdout, os.Stderr)
		fmt.Fprintf(os.Stderr, "moat returned %d instead of becoming moat-rules\n", code)
		os.Exit(100 + code)
	}
	dir := t.TempDir()
	script := "#!/bin/sh\nprintf '%s\\n' \"$0\" \"$@\"\necho \"pid $$\"\necho \"probe $MOAT_SIBLING_PROBE\"\nread -r line; echo \"$line\"\nexit 7\n"
	if err := os.WriteFile(filepath.Join(dir, cli.RulesProgram), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	c := exec.Command(os.Args[0], "-test.run=^TestSiblingExec$")
	c.Env = append(os.Environ(), "MOAT_TEST_SIBLING_CHILD=1", "MOAT_SIBLING_PROBE=kept", "PATH="+dir)
	c.Stdin = strings.NewReader("from stdin\n")
	var stderr strings.Builder
	c.Stderr = &stderr
	out, err := c.Output()
	ee, _ := err.(*exec.ExitError)
	if ee == nil || ee.ExitCode() != 7 {
		t.Fatalf("exit %v, want moat-rules' 7; stdout %q, stderr %q", err, out, stderr.String())
	}
	want := strings.Join([]string{filepath.Join(dir, cli.RulesProgram), "check", "two words", "--", "x",
		"pid " + strconv.Itoa(c.Process.Pid), "probe kept", "from stdin", ""}, "\n")
	if string(out) != want {
		t.Fatalf("moat-rules saw:\n%s\nwant:\n%s\n(stderr %q)", out, want, stderr.String())
	}
}
