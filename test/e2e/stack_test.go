//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/profile"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/moatsec/moat/test/testbin"
)

// dialWait connects as client, waiting for a bus that is starting.
func dialWait(t testing.TB, e *env, url string) *client.Client {
	t.Helper()
	return dialAs(t, e, url, home.RoleClient)
}

// dialAs connects with role's key, waiting for a bus that is starting.
func dialAs(t testing.TB, e *env, url, role string) *client.Client {
	t.Helper()
	h, _ := home.New(e.home)
	o := client.Options{URL: url, Role: role, Wait: 15 * time.Second}.Fill(h)
	c, err := client.Dial(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func waitService(t *testing.T, c *client.Client, name string, n int) {
	t.Helper()
	testbin.Eventually(t, 15*time.Second, fmt.Sprintf("%d copies of %s answering", n, name), func() error {
		st, err := c.Status(context.Background(), 200*time.Millisecond)
		if err != nil {
			return err
		}
		for _, s := range st.Services {
			if s.Name == name && s.Instances == n {
				return nil
			}
		}
		return fmt.Errorf("status: %+v", st.Services)
	})
}

// TestStack runs busd and profiled as real processes and resolves every
// profile and alias through pkg/client, the moat CLI and the nats CLI.
func TestStack(t *testing.T) {
	nats := natsCLI(t)
	e := newEnv(t)
	_, url := startBus(t, e)
	start(t, e.cmd("profiled", "--allow-trusted"))
	c := dialWait(t, e, url)
	waitService(t, c, "profiled", 1)

	names := append([]string{""}, profile.BuiltinNames...)
	for alias := range profile.Aliases {
		names = append(names, alias)
	}
	for _, name := range names {
		p, err := c.Resolve(context.Background(), &wire.ResolveRequest{Profile: name, Workspace: e.ws})
		if err != nil {
			t.Fatalf("resolve %q: %v", name, err)
		}
		want := profile.Default
		if name != "" {
			want = name
			if b, ok := profile.Aliases[name]; ok {
				want = b
			}
		}
		if p.Name != want || p.Workspace != e.ws {
			t.Errorf("resolve %q = %s in %s, want %s", name, p.Name, p.Workspace, want)
		}
	}

	creds := filepath.Join(e.home, "creds", "client.nk")
	out := run(t, exec.Command(nats, "--server", url, "--nkey", creds, "service", "list"))
	if !strings.Contains(out, "profiled") {
		t.Fatalf("nats service list does not show profiled:\n%s", out)
	}
	body := fmt.Sprintf(`{"profile":"workspace-write","workspace":%q}`, e.ws)
	out = run(t, exec.Command(nats, "--server", url, "--nkey", creds, "req", wire.SubjectResolve, body, "--raw"))
	var p wire.Profile
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("nats req answer is not JSON: %v\n%s", err, out)
	}
	if p.Name != "workspace-write" || !slices.Contains(p.FS.Write, e.ws) || p.Net.Mode != "none" {
		t.Fatalf("nats req answer = %+v", p)
	}
	out = run(t, exec.Command(nats, "--server", url, "--nkey", filepath.Join(e.home, "creds", "admin.nk"), "stream", "info", wire.AuditStream, "--json"))
	if !strings.Contains(out, `"messages"`) || !strings.Contains(out, `"retention": "workqueue"`) {
		t.Fatalf("nats stream info:\n%s", out)
	}

	out = run(t, e.cmd("moat", "resolve", "--profile", "workspace-net", "--workspace", e.ws))
	for _, want := range []string{"workspace-net", "network", "allowlist: proxy.golang.org", ".git/hooks", "the system, the workspace, the write roots, and", "/.gitconfig", "guarded", ".pre-commit-config.y*ml"} {
		if !strings.Contains(out, want) {
			t.Errorf("moat resolve output lacks %q:\n%s", want, out)
		}
	}
	out = run(t, e.cmd("moat", "profiles", "--json"))
	var l wire.ProfileList
	if err := json.Unmarshal([]byte(out), &l); err != nil || len(l.Profiles) != 5 {
		t.Fatalf("moat profiles --json: %v\n%s", err, out)
	}
	if out = run(t, e.cmd("moat", "profiles")); !strings.Contains(out, "workspace-net may reach: proxy.golang.org, sum.golang.org") {
		t.Errorf("moat profiles does not show workspace-net's allow list:\n%s", out)
	} else if !strings.Contains(out, "offline reads the system, its workspace and write roots, and: ~/.gitconfig ~/.config/git ~/.config/go/env") {
		t.Errorf("moat profiles does not show offline's read set:\n%s", out)
	}
	cmd := e.cmd("moat", "status")
	outb, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("moat status with services missing: err %v, want exit 3", err)
	}
	for _, want := range []string{"profiled  1", "policyd", "missing", "audit stream"} {
		if !strings.Contains(string(outb), want) {
			t.Errorf("moat status lacks %q:\n%s", want, outb)
		}
	}
	cmd = e.cmd("moat", "resolve", "--profile", "nope", "--workspace", e.ws)
	outb, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(outb), "valid profiles are") || !strings.Contains(string(outb), "(404)") {
		t.Fatalf("moat resolve of an unknown profile: %v\n%s", err, outb)
	}
}

func run(t *testing.T, c *exec.Cmd) string {
	t.Helper()
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(c.Args, " "), err, out)
	}
	return string(out)
}

// TestBusdLifecycle: busd refuses to start without keys, and drains and exits
// 0 on SIGTERM.
func TestBusdLifecycle(t *testing.T) {
	bare := &env{home: t.TempDir()}
	bare.vars = []string{"MOAT_HOME=" + bare.home}
	out, err := bare.cmd("busd", "--listen", "127.0.0.1:0").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "moat init") {
		t.Fatalf("busd without keys: %v\n%s", err, out)
	}

	e := newEnv(t)
	p, _ := startBus(t, e)
	syscall.Kill(p.Cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.Done:
	case <-time.After(10 * time.Second):
		t.Fatal("busd did not exit within 10s of SIGTERM")
	}
	if p.Err != nil || !strings.Contains(p.Output(), "busd stopped") {
		t.Fatalf("busd exit: %v\n%s", p.Err, p.Output())
	}
}
