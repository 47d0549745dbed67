//go:build linux

package escape

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// readWorld is a machine's worth of things a run must not read: another
// project and the shell history in the workspace owner's home, a file in
// /var/lib/<name>, /srv and /mnt, a second user's home, a unix socket under
// /run. Its canary content and the names it uses are unique to this test
// process, so a concurrent test's world can neither fake a pass nor a
// failure.
type readWorld struct {
	content string // every canary file holds it
	name    string // every canary path contains it
	home    string // the fake home: HOME of sandboxd, holding the workspace
	ws      string
	files   []string // the canary files, absolute
	sock    string   // a unix socket that answers with content
	accepts atomic.Int64
	moat    string
}

func newReadWorld(t *testing.T) *readWorld {
	t.Helper()
	r := &readWorld{content: "moat-read-canary-" + randHex(t), name: "mrc-" + randHex(t)}
	r.home = filepath.Join("/root", "mrh-"+randHex(t))
	r.ws = filepath.Join(r.home, "project")
	r.moat = filepath.Join(r.home, "moat-home")
	r.files = []string{
		filepath.Join(r.home, "other-"+r.name, "code.txt"), // another project under the same home
		filepath.Join(r.home, ".bash_history-"+r.name),     // shell history
		filepath.Join("/var/lib", r.name, "db"),
		filepath.Join("/srv", r.name, "data"),
		filepath.Join("/mnt", r.name, "disk"),
		filepath.Join("/home", r.name, ".bash_history"), // a second user's home
	}
	t.Cleanup(func() {
		os.RemoveAll(r.home)
		for _, f := range r.files[2:] {
			os.RemoveAll(filepath.Dir(f))
		}
	})
	for _, f := range r.files {
		write(t, f, r.content+"\n")
	}
	write(t, filepath.Join(r.ws, "README.md"), "# project\n")
	write(t, filepath.Join(r.home, ".gitconfig"), "[user]\n\tname = Reads "+filepath.Base(r.home)+"\n\temail = reads@example.com\n")
	r.sock = filepath.Join("/run", r.name+".sock")
	l, err := net.Listen("unix", r.sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			r.accepts.Add(1)
			c.Write([]byte(r.content + "\n"))
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done; os.Remove(r.sock) })
	return r
}

func randHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// run executes argv through `sandboxd exec` in the workspace.
func (r *readWorld) run(t *testing.T, profile string, argv []string, flags ...string) result {
	t.Helper()
	w := &world{ws: r.ws, moatHome: r.moat, home: r.home}
	return w.run(t, profile, argv, flags...)
}

// hidden fails the test if the canary's content or name reached the
// output or any file in the workspace, or if anything reached the socket.
func (r *readWorld) hidden(t *testing.T, res result) {
	t.Helper()
	// Error messages may name a path the command tried; what it listed
	// must not.
	if strings.Contains(res.stdout, r.content) || strings.Contains(res.stderr, r.content) || strings.Contains(res.stdout, r.name) {
		t.Fatalf("the canary reached the output:\n%s", res)
	}
	filepath.WalkDir(r.ws, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if data, _ := os.ReadFile(p); strings.Contains(string(data), r.content) {
			t.Fatalf("the canary's content reached %s", p)
		}
		return nil
	})
	if n := r.accepts.Load(); n > 0 {
		t.Fatalf("the run reached the socket %s (%d connections)", r.sock, n)
	}
}

// quoted lists paths for a shell.
func quoted(paths []string) string {
	q := make([]string, len(paths))
	for i, p := range paths {
		q[i] = "'" + p + "'"
	}
	return strings.Join(q, " ")
}

// TestReadsConfined reads each canary every way a command could, in every
// profile but trusted, and checks that nothing of it reached the output,
// the workspace or the socket.
func TestReadsConfined(t *testing.T) {
	r := newReadWorld(t)
	roots := "/root /home /var /srv /mnt /media /run /boot"
	rel := func(f string) string { p, _ := filepath.Rel(r.ws, f); return p }
	var viaCwd, links []string
	for i, f := range r.files {
		viaCwd = append(viaCwd, "/proc/1/cwd/"+rel(f), "/proc/self/cwd/"+rel(f))
		links = append(links, fmt.Sprintf("link-%d", i))
	}
	viaRoot := func(prefix string) string {
		var out []string
		for _, f := range r.files {
			out = append(out, prefix+f)
		}
		return quoted(out)
	}
	attacks := []struct {
		name   string
		script string
		plant  bool // plant symlinks to the canaries in the workspace first
	}{
		{"plain paths", "cat " + quoted(r.files) + "; ls -a " + roots + " " + r.home, false},
		{"symlinks planted in the workspace", "cat " + strings.Join(links, " ") + "; cat link-*/*", true},
		{"proc self root", "cat " + viaRoot("/proc/self/root"), false},
		{"proc 1 root", "cat " + viaRoot("/proc/1/root"), false},
		{"proc 1 cwd", "cat " + quoted(viaCwd), false},
		{"hard links", "i=0; for f in " + quoted(r.files) + "; do ln \"$f\" hl-$i; i=$((i+1)); done; cat hl-*", false},
		{"find /", "find / \\( -path /proc -o -path /sys \\) -prune -o -print 2>/dev/null | grep -F " + r.name +
			"; find " + roots + " -type f -exec cat {} + 2>/dev/null | grep -aF " + r.content, false},
		{"grep -r", "grep -rsF " + r.content + " " + roots, false},
		{"du", "du -a / 2>/dev/null | grep -F " + r.name, false},
		{"tar", "tar cf - " + roots + " 2>/dev/null | grep -aoF " + r.content + "; tar cf out.tar " + roots + " 2>/dev/null", false},
		{"unix socket under /run", "/usr/bin/python3 -c \"import socket; s = socket.socket(socket.AF_UNIX); s.connect('" + r.sock + "'); print(s.recv(200))\"; ls /run", false},
	}
	for _, a := range attacks {
		for _, p := range confined {
			t.Run(a.name+"/"+p, func(t *testing.T) {
				if a.plant {
					for i, f := range r.files {
						l := filepath.Join(r.ws, links[i])
						os.Remove(l)
						if err := os.Symlink(f, l); err != nil {
							t.Fatal(err)
						}
						defer os.Remove(l)
						dl := filepath.Join(r.ws, links[i]+"-dir")
						os.Remove(dl)
						if err := os.Symlink(filepath.Dir(f), dl); err != nil {
							t.Fatal(err)
						}
						defer os.Remove(dl)
					}
				}
				res := r.run(t, p, sh(a.script))
				r.hidden(t, res)
			})
		}
	}
}

// TestReadsTrusted shows that the canaries are there to be read: trusted
// reads every one of them, and the socket.
func TestReadsTrusted(t *testing.T) {
	r := newReadWorld(t)
	res := r.run(t, "trusted", sh("for f in "+quoted(r.files)+"; do printf '%s:' \"$f\"; cat \"$f\"; done; /usr/bin/python3 -c \"import socket; s = socket.socket(socket.AF_UNIX); s.connect('"+r.sock+"'); print(s.recv(200))\""), "--allow-trusted")
	for _, f := range r.files {
		if !strings.Contains(res.stdout, f+":"+r.content+"\n") {
			t.Fatalf("trusted did not read %s:\n%s", f, res)
		}
	}
	if r.accepts.Load() != 1 {
		t.Fatalf("trusted did not reach the socket:\n%s", res)
	}
}

// TestReadsAllowed shows what a confined run still reads: its workspace,
// git's identity from ~/.gitconfig, the system, and a custom profile's read
// entries — read-only; a read entry that does not exist is skipped and not
// made on the host.
func TestReadsAllowed(t *testing.T) {
	r := newReadWorld(t)
	srv := filepath.Dir(r.files[3])
	missing := filepath.Join("/srv", r.name+"-missing")
	write(t, filepath.Join(r.moat, "profiles.toml"), fmt.Sprintf("[profiles.reader]\nextends = \"workspace-write\"\nread = [%q, %q]\n", srv, missing))
	write(t, filepath.Join(r.home, ".config", "go", "env"), "GOFLAGS=-buildvcs=false\n")
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is not installed: %v (see go.dev/doc/install)", err)
	}
	for _, p := range []string{"offline", "workspace-write", "reader"} {
		t.Run(p, func(t *testing.T) {
			res := r.run(t, p, sh("cat README.md; git config user.name; "+goBin+" env GOFLAGS; /usr/bin/python3 -c 'print(6*7)'; cat "+r.files[3]+"; echo x > "+r.files[3]))
			for _, want := range []string{"# project\n", "Reads " + filepath.Base(r.home) + "\n", "-buildvcs=false\n", "42\n"} {
				if !strings.Contains(res.stdout, want) {
					t.Fatalf("the run did not print %q:\n%s", want, res)
				}
			}
			if got := strings.Contains(res.stdout, r.content); got != (p == "reader") {
				t.Fatalf("read entry %s visible = %v under %s:\n%s", srv, got, p, res)
			}
			unchanged(t, r.files[3], r.content+"\n")
			absent(t, missing)
		})
	}
}

// TestReadsSecondLayer: under the covering, Landlock reads only what the
// run may see, so a file left visible by the mount namespace still keeps
// its content: a top-level file (covered by /dev/null) is refused outright.
func TestReadsSecondLayer(t *testing.T) {
	r := newReadWorld(t)
	top := filepath.Join("/", r.name)
	write(t, top, r.content+"\n")
	t.Cleanup(func() { os.Remove(top) })
	for _, p := range confined {
		t.Run(p, func(t *testing.T) {
			res := r.run(t, p, sh("cat "+top+"; cat /proc/self/root"+top))
			r.hidden(t, res)
			if strings.Count(res.stderr, "Permission denied") != 2 {
				t.Fatalf("Landlock did not refuse the read:\n%s", res)
			}
		})
	}
}

// TestReadsLinkIntoDenied: a read-set entry that is a link into a
// read-denied path (~/.config/git → ~/.ssh) shows nothing of it.
func TestReadsLinkIntoDenied(t *testing.T) {
	r := newReadWorld(t)
	write(t, filepath.Join(r.home, ".ssh", "id_rsa"), r.content+"\n")
	if err := os.Symlink(filepath.Join(r.home, ".ssh"), filepath.Join(r.home, ".config", "git")); err != nil {
		os.MkdirAll(filepath.Join(r.home, ".config"), 0o755)
		if err := os.Symlink(filepath.Join(r.home, ".ssh"), filepath.Join(r.home, ".config", "git")); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range confined {
		t.Run(p, func(t *testing.T) {
			res := r.run(t, p, sh("cat ~/.config/git/id_rsa "+r.home+"/.config/git/id_rsa "+r.home+"/.ssh/id_rsa; git config user.name"))
			r.hidden(t, res)
			if !strings.Contains(res.stdout, "Reads "+filepath.Base(r.home)) {
				t.Fatalf("git lost the user's identity:\n%s", res)
			}
		})
	}
}
