package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/home"
)

// moat runs the CLI in process and returns its exit code and output.
func moat(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb strings.Builder
	code := Main(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestInitGuardsARunningBus(t *testing.T) {
	s := bustest.Start(t)
	clientKey, _ := os.ReadFile(s.Home.Creds(home.RoleClient))

	// The running stack's own home: a second init says where it is and keeps
	// the keys; --force is refused while the bus admits them.
	t.Setenv(home.EnvHome, s.Home.Dir)
	code, _, stderr := moat(t, "init", "--bus", s.URL)
	if code == ExitOK || !strings.Contains(stderr, "uses its keys") {
		t.Fatalf("second init: %d %q", code, stderr)
	}
	code, _, stderr = moat(t, "init", "--force", "--bus", s.URL)
	if code == ExitOK || !strings.Contains(stderr, "stop the stack") {
		t.Fatalf("init --force under a running bus: %d %q", code, stderr)
	}
	if now, _ := os.ReadFile(s.Home.Creds(home.RoleClient)); string(now) != string(clientKey) {
		t.Fatal("a refused init changed the running bus's keys")
	}

	// Another home while that bus runs: new keys would be refused, so init
	// says so and writes nothing.
	other := filepath.Join(t.TempDir(), "other")
	t.Setenv(home.EnvHome, other)
	code, _, stderr = moat(t, "init", "--bus", s.URL)
	if code == ExitOK || !strings.Contains(stderr, "export MOAT_HOME") {
		t.Fatalf("init beside a running bus: %d %q", code, stderr)
	}
	if _, err := os.Stat(other); !os.IsNotExist(err) {
		t.Fatalf("refused init created %s: %v", other, err)
	}

	// With the bus stopped, both work.
	s.Server.Close()
	if code, out, stderr := moat(t, "init", "--bus", s.URL); code != ExitOK || !strings.Contains(out, other) {
		t.Fatalf("init with no bus: %d %q %q", code, out, stderr)
	}
	t.Setenv(home.EnvHome, s.Home.Dir)
	if code, _, stderr := moat(t, "init", "--force", "--bus", s.URL); code != ExitOK {
		t.Fatalf("init --force with the bus stopped: %d %q", code, stderr)
	}
	if now, _ := os.ReadFile(s.Home.Creds(home.RoleClient)); string(now) == string(clientKey) {
		t.Fatal("--force kept the old key")
	}
}
