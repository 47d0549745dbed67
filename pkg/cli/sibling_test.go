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

// TestSiblingMissing: without moat-mcp or moat-rules next to moat, moat
// mcp and moat rules fail with the generic error code and say what to
// install — and do not run one found on PATH, which may be a directory an
// agent writes; moat -h still lists both.
func TestSiblingMissing(t *testing.T) {
	planted := t.TempDir()
	marker := filepath.Join(planted, "ran")
	for _, p := range []string{cli.MCPProgram, cli.RulesProgram} {
		if err := os.WriteFile(filepath.Join(planted, p), []byte("#!/bin/sh\ntouch "+marker+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", planted+string(os.PathListSeparator)+os.Getenv("PATH")) // the test binary's own directory has neither
	for _, c := range []struct{ command, program string }{{"mcp", cli.MCPProgram}, {"rules", cli.RulesProgram}} {
		code, stdout, stderr := moat(c.command, "-h")
		if code != cli.ExitError || stdout != "" || !strings.Contains(stderr, "moat "+c.command+" is the program "+c.program) ||
			!strings.Contains(stderr, "go install ./cmd/...") {
			t.Errorf("moat %s without %s: exit %d, stdout %q, stderr %q", c.command, c.program, code, stdout, stderr)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("moat ran a moat-mcp or moat-rules found on PATH")
	}
	code, _, stderr := moat("-h")
	if code != cli.ExitOK || !strings.Contains(stderr, "\n  mcp ") || !strings.Contains(stderr, "\n  rules ") {
		t.Errorf("moat -h: exit %d, does not list mcp and rules:\n%s", code, stderr)
	}
}

// TestSiblingExec: moat rules replaces moat with the moat-rules next to it
// (here a shell script, builtins only): the same process, the arguments
// after `rules` and the environment unchanged, standard input passed, its
// exit status moat's. A copy of the test binary, with the script beside
// it, is the moat that execs.
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
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	copied := filepath.Join(dir, "moat")
	if err := os.WriteFile(copied, self, 0o755); err != nil {
		t.Fatal(err)
	}
	c := exec.Command(copied, "-test.run=^TestSiblingExec$")
	c.Env = append(os.Environ(), "MOAT_TEST_SIBLING_CHILD=1", "MOAT_SIBLING_PROBE=kept")
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
