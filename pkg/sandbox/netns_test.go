//go:build linux

package sandbox

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/egress"
	"github.com/moatsec/moat/pkg/egress/egresstest"
	"github.com/moatsec/moat/pkg/profile"
	"github.com/moatsec/moat/pkg/wire"
)

// netWorld is a workspace, the stand-in internet and the profiles the
// egress tests run under.
type netWorld struct {
	ws    string
	ca    string // the stand-in internet's CA, readable inside the sandbox
	net   *egresstest.Net
	srv   map[string]*egresstest.Server
	profs map[string]*wire.Profile
	mu    sync.Mutex
	conns []egress.Conn
}

func newNetWorld(t testing.TB) *netWorld {
	base, err := os.MkdirTemp("/var/tmp", "moat-egress-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	w := &netWorld{ws: filepath.Join(base, "ws"), net: egresstest.New(t), profs: map[string]*wire.Profile{}}
	os.MkdirAll(w.ws, 0o755)
	w.ca = w.net.CAFile(w.ws)
	hello := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { fmt.Fprintf(rw, "hello from %s %s", r.Host, r.URL.Path) })
	w.srv = map[string]*egresstest.Server{
		"allowed-http":  w.net.HTTP("allowed.test", hello),
		"allowed-https": w.net.HTTPS("allowed.test", hello),
		"allowed-ssh": w.net.TCP("allowed.test", 22, func(c net.Conn) {
			io.WriteString(c, "SSH-2.0-test\r\n")
			io.Copy(c, c)
		}),
		"other-http":  w.net.HTTP("other.test", hello),
		"other-https": w.net.HTTPS("other.test", hello),
	}
	w.net.Name("rebind.test", "127.0.0.1")
	w.net.Name("meta.test", "169.254.169.254")
	repos := filepath.Join(base, "repos")
	gitInit(t, repos)
	w.net.GitHTTPS("git.test", repos)
	home := filepath.Join(base, "moat")
	os.MkdirAll(home, 0o700)
	toml := `[profiles.web]
extends = "workspace-write"
net = "allowlist"
net_allow = ["allowed.test", "allowed.test:22", "git.test", "rebind.test", "meta.test"]
net_deny = ["blocked.test"]
[profiles.nothing]
extends = "workspace-write"
net = "allowlist"
net_allow = ["unrelated.test"]
`
	os.WriteFile(filepath.Join(home, "profiles.toml"), []byte(toml), 0o600)
	r, err := profile.NewResolver(profile.Options{MoatHome: home, ProfilesFile: filepath.Join(home, "profiles.toml")})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"web", "nothing", "offline", "workspace-write"} {
		if w.profs[name], err = r.Resolve(&wire.ResolveRequest{Profile: name, Workspace: w.ws}); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// gitInit makes root/repo.git with one commit on main.
func gitInit(t testing.TB, root string) {
	git := egresstest.Tool(t, "git")
	repo, work := filepath.Join(root, "repo.git"), t.TempDir()
	for _, args := range [][]string{{"init", "-q", "--bare", "--initial-branch=main", repo}, {"init", "-q", work},
		{"-C", work, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "through the proxy"},
		{"-C", work, "push", "-q", repo, "HEAD:refs/heads/main"}} {
		if out, err := exec.Command(git, args...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
}

// run runs script under profile prof with the stand-in internet.
func (w *netWorld) run(t *testing.T, prof, script string, env map[string]string) *Result {
	t.Helper()
	spec := &Spec{Argv: []string{"sh", "-c", script}, Profile: w.profs[prof], Env: env,
		Net: NetHooks{Resolver: w.net, Dialer: w.net, OnConn: func(c egress.Conn) {
			w.mu.Lock()
			w.conns = append(w.conns, c)
			w.mu.Unlock()
		}}}
	res, err := Run(context.Background(), spec)
	if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
	return res
}

func TestEgressAllowedClients(t *testing.T) {
	for _, tool := range []string{"curl", "python3", "git"} {
		egresstest.Tool(t, tool)
	}
	w := newNetWorld(t)
	for _, tc := range []struct {
		name, script, want string
		env                map[string]string
	}{
		{"curl https through HTTPS_PROXY", "curl -sS --cacert " + w.ca + " https://allowed.test/a", "hello from allowed.test /a", nil},
		{"curl http through HTTP_PROXY", "curl -sS http://allowed.test/b", "hello from allowed.test /b", nil},
		{"curl socks5h through ALL_PROXY", `curl -sS --cacert ` + w.ca + ` --proxy "$ALL_PROXY" https://allowed.test/c`, "hello from allowed.test /c", nil},
		{"python urllib", `python3 -c 'import ssl, urllib.request; print(urllib.request.urlopen("https://allowed.test/d", context=ssl.create_default_context(cafile="` + w.ca + `")).read().decode(), end="")'`, "hello from allowed.test /d", nil},
		{"git clone over https", "git clone -q https://git.test/repo.git /tmp/clone && git -C /tmp/clone log --format=%s", "through the proxy\n",
			map[string]string{"GIT_SSL_CAINFO": w.ca, "GIT_TERMINAL_PROMPT": "0"}},
		{"resolver answers an allowed name", `python3 -c 'import socket; print(socket.gethostbyname("allowed.test"), end="")'`, "93.184.215.1", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := w.run(t, "web", tc.script, tc.env)
			if res.ExitCode != 0 || string(res.Stdout) != tc.want {
				t.Fatalf("exit %d, out %q, err %q", res.ExitCode, res.Stdout, res.Stderr)
			}
			if len(res.NetDenied) != 0 {
				t.Fatalf("denied %v", res.NetDenied)
			}
		})
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var https bool
	for _, c := range w.conns {
		if c.Host == "allowed.test" && c.Port == 443 && c.Allowed && c.Down > 0 && c.Up > 0 && strings.HasPrefix(c.Addr, "93.184.215.") {
			https = true
		}
	}
	if !https {
		t.Fatalf("no record of the HTTPS connections: %+v", w.conns)
	}
}

func TestEgressDenied(t *testing.T) {
	egresstest.Tool(t, "curl")
	w := newNetWorld(t)
	t.Run("a name not allowed, explained on stderr and in the result", func(t *testing.T) {
		res := w.run(t, "web", "curl -sS --cacert "+w.ca+" https://other.test/; curl -sS -i http://blocked.test/", nil)
		line := "moat: network access to other.test:443 denied (net.not-allowed)"
		if !strings.Contains(string(res.Stderr), line) || !strings.Contains(string(res.Stdout), "X-Moat-Deny: host=\"blocked.test:80\"; rule=\"net.denied\"") {
			t.Fatalf("exit %d, out %q, err %q", res.ExitCode, res.Stdout, res.Stderr)
		}
		if len(res.NetDenied) != 2 || res.NetDenied[0].Dest() != "blocked.test:80" || res.NetDenied[1].Dest() != "other.test:443" {
			t.Fatalf("NetDenied %+v", res.NetDenied)
		}
	})
	t.Run("special addresses and rebinding, through each protocol", func(t *testing.T) {
		var script strings.Builder
		for _, target := range []string{"127.0.0.1", "[::1]", "169.254.169.254", "10.0.0.1", "rebind.test", "meta.test"} {
			fmt.Fprintf(&script, "curl -s -o /dev/null -w '%%{http_code} ' http://%s/; ", target)
			fmt.Fprintf(&script, "curl -s -o /dev/null -w '%%{http_code} ' -p http://%s:443/; ", target)
			fmt.Fprintf(&script, "curl -s -o /dev/null -w '%%{http_code} ' --proxy \"$ALL_PROXY\" http://%s/; ", target)
		}
		res := w.run(t, "web", script.String(), nil)
		codes := strings.Fields(string(res.Stdout))
		if len(codes) != 18 {
			t.Fatalf("out %q err %q", res.Stdout, res.Stderr)
		}
		for i, c := range codes {
			// 403 from the proxy; a refused CONNECT or SOCKS request leaves curl with 000.
			if c != "403" && c != "000" {
				t.Errorf("request %d answered %s: %q", i, c, res.Stdout)
			}
		}
		if len(res.NetDenied) < 6 {
			t.Fatalf("NetDenied %+v", res.NetDenied)
		}
	})
	if d := w.net.Dials(); len(d) != 0 {
		t.Fatalf("the proxy dialed %v", d)
	}
	for _, s := range []string{"other-http", "other-https"} {
		if w.srv[s].Conns.Load() != 0 {
			t.Fatalf("%s saw a connection", s)
		}
	}
	if w.net.Lookups("other.test")+w.net.Lookups("blocked.test") != 0 {
		t.Fatal("a name not allowed was looked up")
	}
}

// acceptAll accepts on ln until it is closed, telling heard of each
// connection and closing it at once.
func acceptAll(ln net.Listener, heard chan<- struct{}) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		heard <- struct{}{}
		c.Close()
	}
}

func TestEgressNoOtherRoute(t *testing.T) {
	for _, tool := range []string{"curl", "python3"} {
		egresstest.Tool(t, tool)
	}
	w := newNetWorld(t)
	// A service on the host's loopback (as busd is) and a UDP one.
	host, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	var hostConns sync.WaitGroup
	accepted := make(chan struct{}, 16)
	hostConns.Add(1)
	go func() { defer hostConns.Done(); acceptAll(host, accepted) }()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	hostPort := host.Addr().(*net.TCPAddr).Port
	udpPort := udp.LocalAddr().(*net.UDPAddr).Port
	// "Elsewhere" is another loopback address of the host, never a real one:
	// were the namespace broken, these attempts would reach the test's own
	// listeners (and fail the test) instead of leaving the machine. That no
	// route leads anywhere is read from the sandbox's own tables.
	elsewhere, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer elsewhere.Close()
	hostConns.Add(1)
	go func() { defer hostConns.Done(); acceptAll(elsewhere, accepted) }()
	elsewherePort := elsewhere.Addr().(*net.TCPAddr).Port

	script := fmt.Sprintf(`
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy
curl -s -m 5 -o /dev/null http://127.0.0.2:%[1]d/; echo "direct:$?"
curl -s -m 5 -o /dev/null http://127.0.0.1:%[2]d/; echo "host-loopback:$?"
echo "routes:$(tail -n +2 /proc/net/route | wc -l)"
echo "ifaces:$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ',')"
python3 - <<'PY'
import socket
def attempt(name, f):
    try:
        f(); print(name + ":sent")
    except OSError as e:
        print(name + ":" + type(e).__name__)
def udp_host():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b"x", ("127.0.0.1", %[3]d))
def raw():
    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
def packet():
    socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
def tcp_out():
    socket.create_connection(("127.0.0.2", %[1]d), timeout=5)
def dns_denied():
    socket.gethostbyname("other.test")
attempt("udp-host", udp_host)
attempt("raw", raw)
attempt("packet", packet)
attempt("tcp-out", tcp_out)
attempt("dns-denied", dns_denied)
PY
`, elsewherePort, hostPort, udpPort)
	before := w.net.Lookups("")
	res := w.run(t, "web", script, nil)
	out := string(res.Stdout)
	for _, want := range []string{"direct:7", "host-loopback:7", "routes:0", "ifaces:lo,", "raw:PermissionError", "packet:PermissionError", "tcp-out:ConnectionRefusedError", "dns-denied:gaierror"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("want %q in %q (stderr %q)", want, out, res.Stderr)
		}
	}
	// A datagram to the sandbox's own loopback port goes nowhere else.
	udp.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, _, err := udp.ReadFrom(make([]byte, 16)); err == nil {
		t.Errorf("the host's UDP service got %d bytes from the sandbox", n)
	}
	select {
	case <-accepted:
		t.Error("the host's loopback service accepted a connection from the sandbox")
	default:
	}
	if got := w.net.Lookups(""); got != before {
		t.Errorf("%d upstream lookups for a name not allowed", got-before)
	}
	if d := w.net.Dials(); len(d) != 0 {
		t.Errorf("the proxy dialed %v", d)
	}
	host.Close()
	elsewhere.Close()
	hostConns.Wait()
}

// TestEgressOwnProxy: 127.0.0.1:3128 in a run is that run's own proxy, never
// another's, even while the other runs.
func TestEgressOwnProxy(t *testing.T) {
	egresstest.Tool(t, "curl")
	w := newNetWorld(t)
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// A run whose proxy would admit allowed.test, alive meanwhile.
		w.run(t, "web", "touch /tmp/x; echo up; sleep 3", nil)
	}()
	go func() { time.Sleep(500 * time.Millisecond); close(started) }()
	<-started
	res := w.run(t, "nothing", "curl -s -o /dev/null -w '%{http_code}' http://allowed.test/", nil)
	wg.Wait()
	if string(res.Stdout) != "403" || len(res.NetDenied) != 1 || res.NetDenied[0].Rule != egress.RuleNotAllowed {
		t.Fatalf("out %q, denied %+v", res.Stdout, res.NetDenied)
	}
	if w.srv["allowed-http"].Conns.Load() != 0 {
		t.Fatal("allowed.test was reached from a run that may not reach it")
	}
}
