//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/moatsec/moat/test/testbin"
)

// TestForemanProcfile runs the repository's Procfile under the real foreman
// with two copies of profiled and checks both serve and share the load.
func TestForemanProcfile(t *testing.T) {
	foreman := tool(t, "foreman", "apt-get install ruby-foreman")
	nats := natsCLI(t)
	e := newEnv(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", testbin.FreePort(t))
	listen := strings.TrimPrefix(url, "nats://")
	c := exec.Command(foreman, "start", "-m", "bus=1,profiled=2", "-f", filepath.Join(repoRoot, "Procfile"), "-d", repoRoot)
	c.Env = append(e.vars, "MOAT_BIN="+binDir, "MOAT_LISTEN="+listen)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := start(t, c)

	client := dialWait(t, e, url)
	waitService(t, client, "profiled", 2)

	for i := 0; i < 200; i++ {
		if _, err := client.Resolve(context.Background(), &wire.ResolveRequest{Profile: "workspace-write", Workspace: e.ws}); err != nil {
			t.Fatalf("resolve %d: %v", i, err)
		}
	}
	creds := filepath.Join(e.home, "creds", home.RoleClient+".nk")
	out := run(t, exec.Command(nats, "--server", url, "--nkey", creds, "service", "list", "profiled"))
	st, _ := client.Status(context.Background(), 200*time.Millisecond)
	for _, s := range st.Services {
		if s.Name != "profiled" {
			continue
		}
		for _, id := range s.IDs {
			if !strings.Contains(out, id) {
				t.Errorf("nats service list lacks instance %s:\n%s", id, out)
			}
		}
	}
	out = run(t, exec.Command(nats, "--server", url, "--nkey", creds, "service", "stats", "profiled", "--json"))
	var stats []struct {
		ID        string `json:"id"`
		Endpoints []struct {
			Name     string `json:"name"`
			Requests int    `json:"num_requests"`
		} `json:"endpoints"`
	}
	if err := json.Unmarshal([]byte(out), &stats); err != nil {
		t.Fatalf("nats service stats --json: %v\n%s", err, out)
	}
	if len(stats) != 2 {
		t.Fatalf("stats from %d instances, want 2:\n%s", len(stats), out)
	}
	total := 0
	for _, s := range stats {
		for _, ep := range s.Endpoints {
			if ep.Name != "resolve" {
				continue
			}
			if ep.Requests == 0 {
				t.Errorf("instance %s answered no resolve: the copies do not share the load", s.ID)
			}
			total += ep.Requests
		}
	}
	if total != 200 {
		t.Errorf("the copies answered %d resolves, want 200", total)
	}

	syscall.Kill(c.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.Done:
	case <-time.After(15 * time.Second):
		t.Fatal("foreman did not stop within 15s of SIGTERM")
	}
	for _, want := range []string{"busd stopped", "profiled.1 | ", "profiled.2 | "} {
		if !strings.Contains(p.Output(), want) {
			t.Errorf("foreman output lacks %q", want)
		}
	}
}
