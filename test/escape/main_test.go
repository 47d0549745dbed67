//go:build linux

// Package escape runs real attacks through `sandboxd exec` and checks that
// their effect did not happen: the canary outside the workspace is
// unchanged, the secret was not printed, the connection was refused, the
// process is gone. docs/escape-tests.md lists every attack with the
// mechanism that stops it.
package escape

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var (
	sandboxd string // the freshly built binary
	int80    string // a static program that calls creat through int 0x80
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "moat-escape-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	build := exec.Command("go", "build", "-o", dir+"/", "../../cmd/sandboxd", "../../cmd/moat-sandbox-helper")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build sandboxd: %v\n%s", err, out)
		os.Exit(1)
	}
	sandboxd = filepath.Join(dir, "sandboxd")
	int80 = filepath.Join(dir, "int80")
	cc := exec.Command("gcc", "-static", "-no-pie", "-O1", "-o", int80, "-x", "c", "-")
	cc.Stdin = strings.NewReader(int80Source)
	if out, err := cc.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "gcc (apt-get install gcc): %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const int80Source = `#include <string.h>
static char path[512];
int main(int argc, char **argv) {
	if (argc < 2) return 2;
	strncpy(path, argv[1], sizeof path - 1);
	long ret;
	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(8L), "b"(path), "c"(0644L) : "memory");
	return ret < 0 ? 1 : 0;
}
`

// Canary contents: if any of these shows up in a command's output, a secret leaked.
const (
	sshSecret   = "-----BEGIN OPENSSH PRIVATE KEY----- canary-ssh-7f3a"
	awsSecret   = "aws_secret_access_key = canary-aws-91bd"
	credsSecret = "SUAcanary-moat-seed-5e2c"
	canaryText  = "canary outside the workspace\n"
	envSecret   = "canary-env-secret-44d1"
)

// world is a workspace, a canary file outside it, a fake home holding
// canary secrets, and a MOAT_HOME holding a canary seed — all outside /tmp,
// as real ones are.
type world struct {
	base, ws, outside, canary, home, moatHome string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	base, err := os.MkdirTemp("/var/tmp", "moat-escape-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	return makeWorld(t, base)
}

// reset lays the same world out again at the same paths.
func (w *world) reset(t *testing.T) *world {
	t.Helper()
	if err := os.RemoveAll(w.base); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(w.base, 0o700); err != nil {
		t.Fatal(err)
	}
	return makeWorld(t, w.base)
}

func makeWorld(t *testing.T, base string) *world {
	t.Helper()
	w := &world{base: base, ws: filepath.Join(base, "ws"), outside: filepath.Join(base, "outside"),
		home: filepath.Join(base, "home"), moatHome: filepath.Join(base, "moat")}
	w.canary = filepath.Join(w.outside, "canary.txt")
	files := map[string]string{
		w.canary:                                        canaryText,
		filepath.Join(w.home, ".ssh", "id_rsa"):         sshSecret,
		filepath.Join(w.home, ".aws", "credentials"):    awsSecret,
		filepath.Join(w.moatHome, "creds", "client.nk"): credsSecret,
		filepath.Join(w.moatHome, "audit", "seg-0"):     "audit segment\n",
		filepath.Join(w.ws, "README.md"):                "# project\n",
		filepath.Join(w.ws, "file.txt"):                 "pattern\n",
		filepath.Join(w.ws, "src.txt"):                  "source\n",
		filepath.Join(w.ws, "malicious.txt"):            "malicious\n",
		filepath.Join(w.ws, ".git", "config"):           "[core]\n\tbare = false\n",
		filepath.Join(w.ws, ".git", "hooks", "README"):  "hooks\n",
		filepath.Join(w.ws, ".git", "HEAD"):             "ref: refs/heads/main\n",
	}
	for path, content := range files {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// result of one run.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// run executes argv through `sandboxd exec` under profile.
func (w *world) run(t *testing.T, profile string, argv []string, flags ...string) result {
	t.Helper()
	return w.runCmd(t, w.exec(profile, argv, flags...))
}

func (w *world) exec(profile string, argv []string, flags ...string) *exec.Cmd {
	args := append([]string{"exec", "--profile", profile, "--workspace", w.ws}, flags...)
	args = append(append(args, "--"), argv...)
	cmd := exec.Command(sandboxd, args...)
	cmd.Env = []string{"MOAT_HOME=" + w.moatHome, "HOME=" + w.home, "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
		"MOAT_CANARY=" + envSecret, "GITHUB_TOKEN=" + envSecret, "AWS_SECRET_ACCESS_KEY=" + envSecret}
	cmd.Dir = w.ws
	return cmd
}

func (w *world) runCmd(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("sandboxd exec did not finish within 60s")
	}
	code := cmd.ProcessState.ExitCode()
	if code == 125 {
		t.Fatalf("the sandbox refused to run: %s", errb.String())
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

func sh(script string) []string { return []string{"/bin/bash", "-c", script} }

// unchanged fails the test if path's content differs from want.
func unchanged(t *testing.T, path, want string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if string(got) != want {
		t.Fatalf("%s changed: %q", path, got)
	}
}

func absent(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); err == nil {
		t.Fatalf("%s exists", path)
	}
}

func notLeaked(t *testing.T, r result, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(r.stdout, s) || strings.Contains(r.stderr, s) {
			t.Fatalf("secret %q leaked:\n%s", s, r)
		}
	}
}

// alive reports whether a process whose command line contains marker exists.
func alive(marker string) bool {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(strings.ReplaceAll(string(data), "\x00", " "), marker) {
			return true
		}
	}
	return false
}
