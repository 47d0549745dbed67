package cli_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moatsec/moat/pkg/audit"
	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/cli"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/policy"
	"github.com/moatsec/moat/pkg/policyd"
	"github.com/moatsec/moat/pkg/profile"
	"github.com/moatsec/moat/pkg/profiled"
	"github.com/moatsec/moat/pkg/wire"
)

// moat runs the command line in process: its exit code and what it wrote.
func moat(args ...string) (code int, stdout, stderr string) {
	var out, errOut strings.Builder
	code = cli.Main(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestArguments: bad or missing arguments are usage errors (2) that say
// what to give, help is no error, and none of them reaches for the bus.
func TestArguments(t *testing.T) {
	t.Setenv(home.EnvHome, filepath.Join(t.TempDir(), "none")) // no keys: a dial would fail otherwise
	t.Setenv(home.EnvBus, "nats://127.0.0.1:1")
	tests := []struct {
		args []string
		code int
		want string // on stderr
	}{
		{nil, cli.ExitUsage, "usage: moat COMMAND"},
		{[]string{"-h"}, cli.ExitOK, "run `moat COMMAND -h`"},
		{[]string{"frobnicate"}, cli.ExitUsage, `unknown command "frobnicate"`},
		{[]string{"check"}, cli.ExitUsage, "give the command after --"},
		{[]string{"check", "-h"}, cli.ExitOK, "-approval"},
		{[]string{"check", "--no-such-flag", "--", "ls"}, cli.ExitUsage, "flag provided but not defined"},
		{[]string{"run"}, cli.ExitUsage, "give the command after --"},
		{[]string{"run", "--approval", "sometimes", "--", "ls"}, cli.ExitUsage, "want on-request or never"},
		{[]string{"run", "--session", "two words", "--", "ls"}, cli.ExitUsage, "session"},
		{[]string{"run", "--", ""}, cli.ExitUsage, "moat run:"},
		{[]string{"check", "--", ""}, cli.ExitUsage, "moat check: argv[0] is empty"},
		{[]string{"check", "--", "", "ls"}, cli.ExitUsage, "moat check: argv[0] is empty"},
		{[]string{"check", "--", "ls", "a\x00b"}, cli.ExitUsage, "moat check: argv[1] has a NUL byte"},
	}
	for _, tt := range tests {
		code, stdout, stderr := moat(tt.args...)
		if code != tt.code || !strings.Contains(stderr, tt.want) {
			t.Errorf("moat %q: exit %d, want %d with %q on stderr:\n%s", tt.args, code, tt.code, tt.want, stderr)
		}
		if stdout != "" {
			t.Errorf("moat %q wrote to stdout: %q", tt.args, stdout)
		}
	}
}

// TestNoBus: with no bus, check fails (1) and run is a sandbox failure
// (125); neither prints a verdict or a result, text or JSON.
func TestNoBus(t *testing.T) {
	s := bustest.Start(t) // keys only: the address below has no bus
	t.Setenv(home.EnvHome, s.Home.Dir)
	t.Setenv(home.EnvBus, "nats://127.0.0.1:1")
	ws := t.TempDir()
	tests := []struct {
		args []string
		code int
	}{
		{[]string{"check", "--workspace", ws, "--", "ls"}, cli.ExitError},
		{[]string{"check", "--json", "--workspace", ws, "--", "ls"}, cli.ExitError},
		{[]string{"run", "--workspace", ws, "--", "ls"}, wire.ExitSandboxFailure},
		{[]string{"run", "--json", "--workspace", ws, "--", "ls"}, wire.ExitSandboxFailure},
	}
	for _, tt := range tests {
		code, stdout, stderr := moat(tt.args...)
		if code != tt.code || !strings.Contains(stderr, "cannot reach the bus") {
			t.Errorf("moat %q: exit %d, want %d saying the bus is unreachable:\n%s", tt.args, code, tt.code, stderr)
		}
		if stdout != "" {
			t.Errorf("moat %q printed an answer without a bus: %q", tt.args, stdout)
		}
	}
}

// TestCheck runs profiled and policyd in process and checks moat check's
// exit codes (0 allow, 77 deny, 78 prompt) and both output shapes.
func TestCheck(t *testing.T) {
	s := bustest.Start(t)
	startPolicy(t, s)
	t.Setenv(home.EnvHome, s.Home.Dir)
	t.Setenv(home.EnvBus, s.URL)
	ws := t.TempDir()
	tests := []struct {
		argv  []string
		code  int
		first string // the first line of the text output
		rule  string // among the reasons
	}{
		{[]string{"ls"}, cli.ExitOK, "ALLOW  ls", ""},
		{[]string{"curl", "https://example.com"}, wire.ExitDenied, "DENY  curl https://example.com", "net.client"},
		{[]string{"python3", "-c", "print(1)"}, wire.ExitPrompt, "PROMPT  python3 -c print(1)", "exec.inline-code"},
	}
	for _, tt := range tests {
		args := append([]string{"check", "--workspace", ws, "--"}, tt.argv...)
		code, stdout, stderr := moat(args...)
		if code != tt.code || strings.SplitN(stdout, "\n", 2)[0] != tt.first || !strings.Contains(stdout, tt.rule) {
			t.Errorf("moat %q: exit %d, want %d, first line %q with %q:\n%s%s", args, code, tt.code, tt.first, tt.rule, stdout, stderr)
		}
		args = append([]string{"check", "--json", "--workspace", ws, "--"}, tt.argv...)
		code, stdout, stderr = moat(args...)
		var d wire.Decision
		if err := json.Unmarshal([]byte(stdout), &d); err != nil || code != tt.code || d.DecidedBy == "" || len(d.Reasons) == 0 {
			t.Errorf("moat %q: exit %d, want %d; decision %+v (%v):\n%s%s", args, code, tt.code, d, err, stdout, stderr)
		}
	}
}

// startPolicy runs profiled and policyd on s until the test ends.
func startPolicy(t *testing.T, s *bustest.Stack) {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	san, err := audit.LoadSanitizer(s.Home.HMACKey())
	if err != nil {
		t.Fatal(err)
	}
	r, err := profile.NewResolver(profile.Options{MoatHome: s.Home.Dir, ProfilesFile: s.Home.ProfilesFile()})
	if err != nil {
		t.Fatal(err)
	}
	pd, err := profiled.Start(s.Conn(t, home.RoleProfiled), profiled.Config{Resolver: r, Logger: quiet, Sanitizer: san})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pd.Stop() })
	engine := policy.New(policy.Options{})
	d, err := policyd.Start(s.Conn(t, home.RolePolicyd), policyd.Config{Engine: engine, Logger: quiet, Sanitizer: san})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop() })
}
