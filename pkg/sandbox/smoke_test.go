//go:build linux

package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/moatsec/moat/pkg/profile"
	"github.com/moatsec/moat/pkg/wire"
)

func TestSmoke(t *testing.T) {
	root, _ := filepath.EvalSymlinks(t.TempDir())
	ws := filepath.Join(root, "ws")
	os.MkdirAll(ws, 0o755)
	os.MkdirAll(filepath.Join(root, "moat"), 0o700)
	r, err := profile.NewResolver(profile.Options{MoatHome: filepath.Join(root, "moat")})
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.Resolve(&wire.ResolveRequest{Profile: "workspace-write", Workspace: ws})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), &Spec{Argv: []string{"sh", "-c", "echo hi; id; echo x > f; cat /proc/self/status | grep Cap; ls -la /tmp /dev; touch /etc/x; echo $?"}, Profile: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("exit %d signal %s\nstdout:\n%s\nstderr:\n%s\nisolation %v usage %+v dur %v", res.ExitCode, res.Signal, res.Stdout, res.Stderr, res.Isolation, res.Usage, res.Duration)
}
