//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// TestRunQuarantine: a run that leaves a git hook in a repository it made
// gets it moved to MOAT_HOME/quarantine before the answer; the answer says
// so, and sandboxd records a run.quarantine event.
func TestRunQuarantine(t *testing.T) {
	e := newEnv(t)
	base, err := os.MkdirTemp("/var/tmp", "moat-e2e-quarantine-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	ws := filepath.Join(base, "ws")
	os.MkdirAll(ws, 0o755)
	_, url := startBus(t, e)
	start(t, e.cmd("profiled"))
	start(t, e.cmd("policyd", "--approval-timeout", "2s"))
	start(t, e.cmd("sandboxd"))
	c := dialWait(t, e, url)
	waitService(t, c, "sandboxd", 1)

	cmd := e.cmd("moat", "run", "--json", "--profile", "workspace-write", "--", "sh", "-c",
		"mkdir -p made/.git/hooks made/.git/objects && echo 'ref: refs/heads/main' > made/.git/HEAD && printf '#!/bin/sh\\necho hi\\n' > made/.git/hooks/pre-commit")
	cmd.Dir = ws
	out, err := cmd.Output()
	var res wire.RunResult
	if jerr := json.Unmarshal(out, &res); jerr != nil || res.ExitCode != 0 {
		t.Fatalf("moat run: %v %v\n%s", err, jerr, out)
	}
	hook := filepath.Join(ws, "made", ".git", "hooks", "pre-commit")
	if len(res.Quarantined) != 1 || res.Quarantined[0].Path != hook || !strings.Contains(string(res.Stderr), "moat: moved "+hook) {
		t.Fatalf("quarantined = %+v, stderr %q", res.Quarantined, res.Stderr)
	}
	if _, err := os.Lstat(hook); err == nil {
		t.Fatalf("the hook is still in the workspace")
	}
	if !strings.HasPrefix(res.Quarantined[0].MovedTo, filepath.Join(e.home, "quarantine")) {
		t.Fatalf("moved to %s", res.Quarantined[0].MovedTo)
	}
	js, _ := jetstream.New(dialAs(t, e, url, home.RoleAdmin).Conn())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, wire.AuditStream)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetLastMsgForSubject(ctx, wire.AuditSubject("sandboxd", wire.KindRunQuarantine)); err != nil {
		t.Fatalf("no run.quarantine event: %v", err)
	}
}
