//go:build linux

// Package toolchain runs everyday builds through the real `sandboxd exec`
// under workspace-write, as a fresh user whose home has never seen a build:
// a Go module's tests, a C program with make, a Python script importing from
// a venv made in the workspace. Each runs twice; the second hits the
// moat-managed cache, and the user's real caches are never written.
package toolchain

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

var sandboxd string // the freshly built binary

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "moat-toolchain-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755)
	build := exec.Command("go", "build", "-o", dir+"/", "../../cmd/sandboxd", "../../cmd/moat-sandbox-helper")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build sandboxd: %v\n%s", err, out)
		os.Exit(1)
	}
	sandboxd = filepath.Join(dir, "sandboxd")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// user is a fresh account with an empty home, made for one test.
type user struct {
	name, home string
	uid, gid   int
}

func freshUser(t *testing.T) *user {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the toolchain tests make a fresh user: run them as root (CI does)")
	}
	u := &user{name: fmt.Sprintf("moattc%d", os.Getpid()%100000)}
	u.home = filepath.Join("/home", u.name)
	exec.Command("userdel", "--remove", "--force", u.name).Run() // a leftover of a killed run
	if out, err := exec.Command("useradd", "--create-home", "--home-dir", u.home, "--shell", "/bin/sh", u.name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("userdel", "--remove", "--force", u.name).Run() })
	for _, id := range []struct {
		flag string
		dst  *int
	}{{"-u", &u.uid}, {"-g", &u.gid}} {
		out, err := exec.Command("id", id.flag, u.name).Output()
		if err != nil {
			t.Fatal(err)
		}
		*id.dst, _ = strconv.Atoi(strings.TrimSpace(string(out)))
	}
	return u
}

// workspace makes dir under the user's home with files, all owned by the user.
func (u *user) workspace(t *testing.T, name string, files map[string]string) string {
	t.Helper()
	ws := filepath.Join(u.home, name)
	for rel, data := range files {
		p := filepath.Join(ws, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("chown", "-R", u.name+":", ws).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v\n%s", err, out)
	}
	return ws
}

// run runs argv under workspace-write in ws and returns its output; a
// failure ends the test with everything the run said.
func run(t *testing.T, ws string, argv ...string) string {
	t.Helper()
	args := append([]string{"exec", "--profile", "workspace-write", "--workspace", ws, "--"}, argv...)
	cmd := exec.Command(sandboxd, args...)
	cmd.Env = []string{"PATH=/usr/local/go/bin:/usr/local/bin:/usr/bin:/bin", "MOAT_HOME=" + filepath.Join(os.TempDir(), "moat-toolchain-home")}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

// size is the bytes of regular files under dir (0 when it is absent).
func size(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func absent(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s exists: a run wrote the user's real cache", p)
		}
	}
}

func TestGoModuleTests(t *testing.T) {
	u := freshUser(t)
	ws := u.workspace(t, "gomod", map[string]string{
		"go.mod":       "module example.com/calc\n\ngo 1.21\n",
		"calc.go":      "package calc\n\nfunc Add(a, b int) int { return a + b }\n",
		"calc_test.go": "package calc\n\nimport \"testing\"\n\nfunc TestAdd(t *testing.T) {\n\tif Add(2, 3) != 5 {\n\t\tt.Fatal(\"2+3\")\n\t}\n\tt.Log(\"ADD-RAN\")\n}\n",
	})
	goCache := filepath.Join(u.home, ".cache", "moat", "user", "go-build")
	first := run(t, ws, "go", "test", "-v", "./...")
	if !strings.Contains(first, "ADD-RAN") || !strings.Contains(first, "PASS") {
		t.Fatalf("the test did not run and pass:\n%s", first)
	}
	grown := size(goCache)
	if grown == 0 {
		t.Fatalf("the moat cache %s did not grow", goCache)
	}
	second := run(t, ws, "go", "test", "-v", "./...")
	if !strings.Contains(second, "(cached)") {
		t.Fatalf("the second run did not hit the cache:\n%s", second)
	}
	if fi, err := os.Stat(goCache); err != nil || int(fi.Sys().(*syscall.Stat_t).Uid) != u.uid {
		t.Errorf("the cache %s is not the user's own: %v", goCache, err)
	}
	absent(t, filepath.Join(u.home, ".cache", "go-build"), filepath.Join(u.home, "go"))
}

func TestCWithMake(t *testing.T) {
	u := freshUser(t)
	ws := u.workspace(t, "cproj", map[string]string{
		"hello.c":  "#include <stdio.h>\nint main(void) { puts(\"HELLO-FROM-C\"); return 0; }\n",
		"Makefile": "hello: hello.c\n\tcc -O2 -o hello hello.c\n",
	})
	out := run(t, ws, "sh", "-c", "make && ./hello")
	if !strings.Contains(out, "HELLO-FROM-C") {
		t.Fatalf("the program did not build and run:\n%s", out)
	}
	if out := run(t, ws, "make"); !strings.Contains(out, "up to date") {
		t.Fatalf("the second make rebuilt:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(ws, "hello")); err != nil {
		t.Fatalf("the binary is not in the workspace: %v", err)
	}
}

func TestPythonVenv(t *testing.T) {
	u := freshUser(t)
	ws := u.workspace(t, "pyproj", map[string]string{
		"main.py": "import greet\nprint(greet.hello())\n",
	})
	run(t, ws, "/usr/bin/python3", "-m", "venv", "--without-pip", ".venv")
	lib, err := filepath.Glob(filepath.Join(ws, ".venv", "lib", "python3*", "site-packages"))
	if err != nil || len(lib) != 1 {
		t.Fatalf("venv site-packages: %v %v", lib, err)
	}
	// The module lands in the venv as a package install would put it.
	run(t, ws, "sh", "-c", "printf 'def hello():\\n    return \"HELLO-FROM-VENV\"\\n' > "+filepath.Join(lib[0], "greet.py"))
	for i := 0; i < 2; i++ {
		if out := run(t, ws, ".venv/bin/python", "main.py"); !strings.Contains(out, "HELLO-FROM-VENV") {
			t.Fatalf("run %d: %s", i+1, out)
		}
	}
	if _, err := os.Stat(filepath.Join(lib[0], "__pycache__")); err != nil {
		t.Fatalf("no bytecode cache was written in the venv: %v", err)
	}
	absent(t, filepath.Join(u.home, ".cache", "pip"))
}

// TestLinkedReadSetStaysTheUsers: the helper resolves the read set as root,
// but a link the user planted there (~/.gitconfig) shows only what the user
// could read on the host — a file behind root's 0700 home stays covered —
// while a link into the user's own dotfiles still works.
func TestLinkedReadSetStaysTheUsers(t *testing.T) {
	u := freshUser(t)
	ws := u.workspace(t, "proj", map[string]string{"README": "x\n"})
	canary := fmt.Sprintf("root-only-canary-%d", os.Getpid())
	locked := filepath.Join("/root", fmt.Sprintf("moat-locked-%d", os.Getpid()))
	if err := os.WriteFile(locked, []byte(canary+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(locked) })
	if fi, err := os.Stat("/root"); err != nil || fi.Mode().Perm()&0o001 != 0 {
		t.Fatalf("the test needs /root closed to other users: %v %v", fi.Mode(), err)
	}
	link := filepath.Join(u.home, ".gitconfig")
	if err := os.Symlink(locked, link); err != nil {
		t.Fatal(err)
	}
	exec.Command("chown", "-h", u.name+":", link).Run()
	if out := run(t, ws, "sh", "-c", "cat ~/.gitconfig 2>&1; echo done"); strings.Contains(out, canary) || !strings.Contains(out, "done") {
		t.Fatalf("the run read a file its user cannot reach on the host:\n%s", out)
	}
	// The same link into the user's own files is followed.
	os.Remove(link)
	own := u.workspace(t, "dotfiles", map[string]string{"gitconfig": "[user]\n\tname = Own Dotfiles\n"})
	if err := os.Symlink(filepath.Join(own, "gitconfig"), link); err != nil {
		t.Fatal(err)
	}
	exec.Command("chown", "-h", u.name+":", link).Run()
	if out := run(t, ws, "sh", "-c", "cat ~/.gitconfig"); !strings.Contains(out, "Own Dotfiles") {
		t.Fatalf("the user's own linked gitconfig is not read:\n%s", out)
	}
}
