package egress_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/egress"
	"github.com/moatsec/moat/pkg/egress/egresstest"
)

// fixture is a proxy on loopback in front of a stand-in internet.
type fixture struct {
	net     *egresstest.Net
	proxy   *egress.Proxy
	addr    string // the proxy's listener
	dns     string // its DNS socket
	mu      sync.Mutex
	conns   []egress.Conn
	denials []egress.Denial
}

func (f *fixture) records() []egress.Conn {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]egress.Conn(nil), f.conns...)
}

func (f *fixture) denied() []egress.Denial {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]egress.Denial(nil), f.denials...)
}

// world is the stand-in internet most tests use:
//
//	allowed.test   HTTP on 80, HTTPS on 443, an echo server on 22
//	other.test     HTTP and HTTPS, never in an allow list
//	rebind.test    resolves to 127.0.0.1 (and is allowed by name)
//	meta.test      resolves to 169.254.169.254 (allowed by name)
//	inside.test    resolves to 10.0.0.1 and fd00::1 (allowed by name)
func world(t *testing.T) (*egresstest.Net, map[string]*egresstest.Server) {
	n := egresstest.New(t)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s %s", r.Host, r.URL.Path)
	})
	s := map[string]*egresstest.Server{
		"allowed-http":  n.HTTP("allowed.test", ok),
		"allowed-https": n.HTTPS("allowed.test", ok),
		"allowed-ssh": n.TCP("allowed.test", 22, func(c net.Conn) {
			io.WriteString(c, "SSH-2.0-test\r\n")
			io.Copy(c, c)
		}),
		"other-http":  n.HTTP("other.test", ok),
		"other-https": n.HTTPS("other.test", ok),
	}
	n.Name("rebind.test", "127.0.0.1")
	n.Name("meta.test", "169.254.169.254")
	n.Name("inside.test", "10.0.0.1", "fd00::1")
	return n, s
}

// start serves a proxy with policy p (allow/deny lists; any = full network).
func start(t testing.TB, n *egresstest.Net, any bool, allow, deny []string) *fixture {
	t.Helper()
	pol, err := egress.NewPolicy("test", any, allow, deny)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{net: n}
	f.proxy = egress.New(egress.Config{Policy: pol, Resolver: n, Dialer: n,
		OnConn: func(c egress.Conn) { f.mu.Lock(); f.conns = append(f.conns, c); f.mu.Unlock() },
		OnDeny: func(d egress.Denial) { f.mu.Lock(); f.denials = append(f.denials, d); f.mu.Unlock() }})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr, f.dns = ln.Addr().String(), pc.LocalAddr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { f.proxy.Serve(ctx, ln); done <- struct{}{} }()
	go func() { f.proxy.ServeDNS(ctx, pc); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })
	return f
}

// client is an HTTP client that uses the proxy for http and https.
func (f *fixture) client() *http.Client {
	u, _ := url.Parse("http://" + f.addr)
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{Proxy: http.ProxyURL(u),
		TLSClientConfig: &tls.Config{RootCAs: f.net.CAPool()}, DisableKeepAlives: true}}
}

// socks connects through the proxy's SOCKS5 to host:port and returns the
// reply code and, on success, the tunnel.
func (f *fixture) socks(t *testing.T, host string, port int) (byte, net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(time.Minute))
	req := []byte{5, 1, 0, 5, 1, 0}
	if a, err := netip.ParseAddr(host); err == nil && a.Is4() {
		req = append(append(req, 1), a.AsSlice()...)
	} else if err == nil {
		req = append(append(req, 4), a.AsSlice()...)
	} else {
		req = append(append(req, 3, byte(len(host))), host...)
	}
	req = binary.BigEndian.AppendUint16(req, uint16(port))
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	reply := make([]byte, 12)
	if _, err := io.ReadFull(c, reply); err != nil {
		c.Close()
		return 0xff, nil
	}
	if reply[0] != 5 || reply[1] != 0 {
		t.Fatalf("SOCKS greeting answered % x", reply[:2])
	}
	if reply[3] != 0 {
		c.Close()
		return reply[3], nil
	}
	c.SetDeadline(time.Time{})
	t.Cleanup(func() { c.Close() })
	return 0, c
}

// connect opens a CONNECT tunnel and returns the status and the tunnel.
func (f *fixture) connect(t *testing.T, target, hostHeader string) (*http.Response, net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(time.Minute))
	if hostHeader == "" {
		hostHeader = target
	}
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, hostHeader)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("CONNECT %s: %v", target, err)
	}
	c.SetDeadline(time.Time{})
	return resp, &bufConn{c, br}
}

type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufConn) Read(p []byte) (int, error) { return b.r.Read(p) }

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAllowedThroughEachProtocol(t *testing.T) {
	n, srv := world(t)
	f := start(t, n, false, []string{"allowed.test", "allowed.test:22"}, nil)

	t.Run("http absolute URI", func(t *testing.T) {
		resp, err := f.client().Get("http://allowed.test/a")
		if err != nil {
			t.Fatal(err)
		}
		if got := body(t, resp); resp.StatusCode != 200 || got != "hello from allowed.test /a" {
			t.Fatalf("got %d %q", resp.StatusCode, got)
		}
	})
	t.Run("https CONNECT", func(t *testing.T) {
		resp, err := f.client().Get("https://allowed.test/b")
		if err != nil {
			t.Fatal(err)
		}
		if got := body(t, resp); resp.StatusCode != 200 || got != "hello from allowed.test /b" {
			t.Fatalf("got %d %q", resp.StatusCode, got)
		}
	})
	t.Run("socks5 by name, TLS", func(t *testing.T) {
		code, c := f.socks(t, "allowed.test", 443)
		if code != 0 {
			t.Fatalf("SOCKS reply %d", code)
		}
		tc := tls.Client(c, &tls.Config{ServerName: "allowed.test", RootCAs: n.CAPool()})
		fmt.Fprintf(tc, "GET /c HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := body(t, resp); got != "hello from allowed.test /c" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("socks5 by name, ssh-like server-first protocol on an allowed port", func(t *testing.T) {
		code, c := f.socks(t, "allowed.test", 22)
		if code != 0 {
			t.Fatalf("SOCKS reply %d", code)
		}
		br := bufio.NewReader(c)
		banner, err := br.ReadString('\n')
		if err != nil || banner != "SSH-2.0-test\r\n" {
			t.Fatalf("banner %q, %v", banner, err)
		}
		io.WriteString(c, "ping\n")
		if echo, _ := br.ReadString('\n'); echo != "ping\n" {
			t.Fatalf("echo %q", echo)
		}
	})
	if srv["allowed-https"].Hellos.Load() != 2 {
		t.Errorf("HTTPS server saw %d handshakes, want 2", srv["allowed-https"].Hellos.Load())
	}
	if len(f.denied()) != 0 {
		t.Errorf("denials: %v", f.denied())
	}
}

func TestNotAllowedExplained(t *testing.T) {
	n, srv := world(t)
	f := start(t, n, false, []string{"allowed.test"}, nil)

	t.Run("http", func(t *testing.T) {
		resp, err := f.client().Get("http://other.test/")
		if err != nil {
			t.Fatal(err)
		}
		b := body(t, resp)
		h := resp.Header.Get("X-Moat-Deny")
		if resp.StatusCode != 403 || !strings.Contains(b, "other.test:80") || !strings.Contains(b, egress.RuleNotAllowed) ||
			!strings.Contains(b, "net_allow") || !strings.Contains(h, `host="other.test:80"`) || !strings.Contains(h, `rule="net.not-allowed"`) {
			t.Fatalf("got %d, X-Moat-Deny %q, body %q", resp.StatusCode, h, b)
		}
	})
	t.Run("connect", func(t *testing.T) {
		resp, _ := f.connect(t, "other.test:443", "")
		if resp.StatusCode != 403 || !strings.Contains(resp.Header.Get("X-Moat-Deny"), "other.test:443") {
			t.Fatalf("got %d %q", resp.StatusCode, resp.Header.Get("X-Moat-Deny"))
		}
	})
	t.Run("connect on a port a bare host does not admit", func(t *testing.T) {
		resp, _ := f.connect(t, "allowed.test:22", "")
		if resp.StatusCode != 403 || !strings.Contains(resp.Header.Get("X-Moat-Deny"), egress.RulePort) {
			t.Fatalf("got %d %q", resp.StatusCode, resp.Header.Get("X-Moat-Deny"))
		}
	})
	t.Run("socks", func(t *testing.T) {
		if code, _ := f.socks(t, "other.test", 443); code != 2 {
			t.Fatalf("SOCKS reply %d, want 2 (not allowed by ruleset)", code)
		}
	})
	for name, s := range srv {
		if strings.HasPrefix(name, "other") && s.Conns.Load() != 0 {
			t.Errorf("%s saw %d connections", name, s.Conns.Load())
		}
	}
	if srv["allowed-ssh"].Conns.Load() != 0 {
		t.Errorf("port 22 saw a connection")
	}
	if got := n.Lookups("other.test"); got != 0 {
		t.Errorf("other.test was looked up %d times: a denied name must not reach DNS", got)
	}
	d := f.denied()
	if len(d) != 4 || len(f.proxy.Denied()) != 3 { // other.test:443 twice
		t.Fatalf("OnDeny heard %v; Denied() = %v", d, f.proxy.Denied())
	}
	if !strings.HasPrefix(d[0].String(), "moat: network access to other.test:80 denied (net.not-allowed)") {
		t.Errorf("denial line %q", d[0].String())
	}
}

func TestSpecialAddressesRefused(t *testing.T) {
	n, _ := world(t)
	targets := []struct{ host, port string }{
		{"127.0.0.1", "80"}, {"::1", "443"}, {"169.254.169.254", "80"}, {"10.0.0.1", "443"},
		{"rebind.test", "443"}, {"meta.test", "80"}, {"inside.test", "443"}, {"0.0.0.0", "80"},
		{"::ffff:127.0.0.1", "443"}, {"64:ff9b::a9fe:a9fe", "80"}, {"100.100.100.200", "80"}, {"fe80::1", "443"},
	}
	// Full network, and an allow list naming every one of them without a range.
	policies := map[string]*fixture{
		"full": start(t, n, true, nil, nil),
		"allowlist": start(t, n, false, []string{"rebind.test", "meta.test", "inside.test", "127.0.0.1", "169.254.169.254",
			"10.0.0.1", "[::1]", "0.0.0.0/0:443", "0.0.0.0/0:80", "[::/0]:443", "[::/0]:80"}, nil),
	}
	for pname, f := range policies {
		for _, tg := range targets {
			hp := net.JoinHostPort(tg.host, tg.port)
			t.Run(pname+"/connect "+hp, func(t *testing.T) {
				resp, _ := f.connect(t, hp, "")
				if resp.StatusCode != 403 {
					t.Fatalf("got %d", resp.StatusCode)
				}
			})
			t.Run(pname+"/http "+hp, func(t *testing.T) {
				resp, err := f.client().Get("http://" + hp + "/")
				if err != nil {
					t.Fatal(err)
				}
				if b := body(t, resp); resp.StatusCode != 403 || resp.Header.Get("X-Moat-Deny") == "" {
					t.Fatalf("got %d %q", resp.StatusCode, b)
				}
			})
			t.Run(pname+"/socks "+hp, func(t *testing.T) {
				var port int
				fmt.Sscan(tg.port, &port)
				if code, _ := f.socks(t, tg.host, port); code != 2 {
					t.Fatalf("SOCKS reply %d", code)
				}
			})
		}
	}
	if d := n.Dials(); len(d) != 0 {
		t.Fatalf("dialed %v", d)
	}
}

func TestNamedRangeReachesPrivateAddress(t *testing.T) {
	n, srv := world(t)
	echo := srv["allowed-ssh"].Addr // a real loopback server
	ap := netip.MustParseAddrPort(echo)
	f := start(t, n, false, []string{fmt.Sprintf("127.0.0.1/32:%d", ap.Port())}, nil)
	code, c := f.socks(t, "127.0.0.1", int(ap.Port()))
	if code != 0 {
		t.Fatalf("SOCKS reply %d", code)
	}
	if banner, _ := bufio.NewReader(c).ReadString('\n'); banner != "SSH-2.0-test\r\n" {
		t.Fatalf("banner %q", banner)
	}
	// The same range on another port, and a wider range, do not.
	f2 := start(t, n, false, []string{"127.0.0.1/32:1", fmt.Sprintf("0.0.0.0/0:%d", ap.Port())}, nil)
	if code, _ := f2.socks(t, "127.0.0.1", int(ap.Port())); code != 2 {
		t.Fatalf("SOCKS reply %d, want 2", code)
	}
}

func TestDenyWins(t *testing.T) {
	n, srv := world(t)
	f := start(t, n, true, []string{"allowed.test"}, []string{"allowed.test", "*.test:443"})
	resp, err := f.client().Get("http://allowed.test/")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 403 || !strings.Contains(resp.Header.Get("X-Moat-Deny"), egress.RuleDenied) {
		t.Fatalf("got %d %q", resp.StatusCode, resp.Header.Get("X-Moat-Deny"))
	}
	if resp, _ := f.connect(t, "other.test:443", ""); resp.StatusCode != 403 {
		t.Fatalf("other.test:443 under *.test:443 deny: %d", resp.StatusCode)
	}
	if srv["allowed-http"].Conns.Load()+srv["other-https"].Conns.Load() != 0 {
		t.Fatal("a denied server saw a connection")
	}
}

func TestEmptyAllowListNoEgress(t *testing.T) {
	n, srv := world(t)
	f := start(t, n, false, nil, nil)
	resp, err := f.client().Get("http://allowed.test/")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 403 || !strings.Contains(resp.Header.Get("X-Moat-Deny"), egress.RuleNoEgress) {
		t.Fatalf("got %d %q", resp.StatusCode, resp.Header.Get("X-Moat-Deny"))
	}
	if srv["allowed-http"].Conns.Load() != 0 || n.Lookups("") != 0 {
		t.Fatal("something was reached")
	}
}

func TestSNIMismatchRefused(t *testing.T) {
	n, srv := world(t)
	f := start(t, n, false, []string{"allowed.test", "other.test"}, nil)
	for _, proto := range []string{"connect", "socks"} {
		t.Run(proto, func(t *testing.T) {
			var c net.Conn
			if proto == "connect" {
				resp, tc := f.connect(t, "allowed.test:443", "")
				if resp.StatusCode != 200 {
					t.Fatalf("CONNECT %d", resp.StatusCode)
				}
				c = tc
			} else {
				code, sc := f.socks(t, "allowed.test", 443)
				if code != 0 {
					t.Fatalf("SOCKS %d", code)
				}
				c = sc
			}
			tc := tls.Client(c, &tls.Config{ServerName: "other.test", RootCAs: n.CAPool()})
			tc.SetDeadline(time.Now().Add(time.Minute))
			if err := tc.Handshake(); err == nil {
				t.Fatal("a handshake naming other.test completed through a tunnel to allowed.test")
			}
		})
	}
	if h := srv["allowed-https"].Hellos.Load() + srv["other-https"].Hellos.Load(); h != 0 {
		t.Fatalf("servers saw %d ClientHellos", h)
	}
	var sni int
	for _, d := range f.denied() {
		if d.Rule == egress.RuleSNI && d.Host == "allowed.test" {
			sni++
		}
	}
	if sni != 2 {
		t.Fatalf("denials %v", f.denied())
	}
}

func TestHostMismatchRefused(t *testing.T) {
	n, srv := world(t)
	f := start(t, n, false, []string{"allowed.test", "other.test"}, nil)
	t.Run("absolute URI", func(t *testing.T) {
		c, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Minute))
		io.WriteString(c, "GET http://allowed.test/ HTTP/1.1\r\nHost: other.test\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 403 || !strings.Contains(resp.Header.Get("X-Moat-Deny"), egress.RuleHost) {
			t.Fatalf("got %d %q", resp.StatusCode, resp.Header.Get("X-Moat-Deny"))
		}
	})
	t.Run("cleartext HTTP in a tunnel", func(t *testing.T) {
		resp, c := f.connect(t, "allowed.test:80", "")
		if resp.StatusCode != 200 {
			t.Fatalf("CONNECT %d", resp.StatusCode)
		}
		c.SetDeadline(time.Now().Add(time.Minute))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("first request: %v %v", resp, err)
		}
		body(t, resp)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: other.test\r\n\r\n")
		if b, _ := io.ReadAll(c); len(b) != 0 {
			t.Fatalf("a request for other.test through allowed.test's tunnel was answered: %q", b)
		}
	})
	if got := srv["allowed-http"].Hosts(); len(got) != 1 || got[0] != "allowed.test" {
		t.Fatalf("allowed.test's server saw Hosts %v", got)
	}
	if srv["other-http"].Conns.Load() != 0 {
		t.Fatal("other.test saw a connection")
	}
}

func TestRecords(t *testing.T) {
	n, _ := world(t)
	f := start(t, n, false, []string{"allowed.test"}, nil)
	resp, err := f.client().Get("https://allowed.test/x")
	if err != nil {
		t.Fatal(err)
	}
	body(t, resp)
	f.client().Get("http://other.test/")
	resp, err = f.client().Get("http://allowed.test/plain")
	if err != nil {
		t.Fatal(err)
	}
	body(t, resp)
	// A record is written when the proxy sees its connection end.
	deadline := time.Now().Add(time.Minute)
	for len(f.records()) < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	var ok, plain, denied *egress.Conn
	for _, r := range f.records() {
		switch {
		case r.Host == "allowed.test" && r.Port == 443:
			ok = &r
		case r.Host == "allowed.test" && r.Port == 80:
			plain = &r
		case r.Host == "other.test":
			denied = &r
		}
	}
	if ok == nil || plain == nil || denied == nil {
		t.Fatalf("records %+v", f.records())
	}
	if !plain.Allowed || plain.Proto != "http" || plain.Rule != egress.RuleAllowed || plain.Up < 50 || plain.Down < 50 {
		t.Errorf("allowed http record %+v", *plain)
	}
	if !ok.Allowed || ok.Proto != "connect" || ok.Port != 443 || !strings.HasPrefix(ok.Addr, "93.184.215.") || ok.Rule != egress.RuleAllowed ||
		ok.Entry != "allowed.test" || ok.Up < 200 || ok.Down < 500 || ok.Duration <= 0 {
		t.Errorf("allowed record %+v", *ok)
	}
	if denied.Allowed || denied.Proto != "http" || denied.Rule != egress.RuleNotAllowed || denied.Addr != "" || denied.Up != 0 {
		t.Errorf("denied record %+v", *denied)
	}
}

// TestKeptConnectionClosedByServer: a server that closes a kept connection
// between requests costs the client nothing: an idempotent request is sent
// again on a fresh connection.
func TestKeptConnectionClosedByServer(t *testing.T) {
	n := egresstest.New(t)
	srv := n.TCP("flaky.test", 80, func(c net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		_ = req // and close, without saying so
	})
	f := start(t, n, false, []string{"flaky.test"}, nil)
	c, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	br := bufio.NewReader(c)
	for i := range 3 {
		fmt.Fprintf(c, "GET http://flaky.test/%d HTTP/1.1\r\nHost: flaky.test\r\n\r\n", i)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if got := body(t, resp); resp.StatusCode != 200 || got != "ok" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, got)
		}
		time.Sleep(20 * time.Millisecond) // let the server's close arrive
	}
	if srv.Conns.Load() != 3 {
		t.Fatalf("%d upstream connections, want 3", srv.Conns.Load())
	}
}

// TestConnectionLimit: a command cannot make sandboxd hold more client
// connections than MaxConns; past it, new ones are closed at once.
func TestConnectionLimit(t *testing.T) {
	n, _ := world(t)
	pol, _ := egress.NewPolicy("test", false, []string{"allowed.test"}, nil)
	p := egress.New(egress.Config{Policy: pol, Resolver: n, Dialer: n, MaxConns: 2})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Serve(ctx, ln); close(done) }()
	defer func() { cancel(); <-done }()
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "G") // a request that never finishes
		held = append(held, c)
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	io.WriteString(c, "GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n")
	if b, err := io.ReadAll(c); len(b) != 0 {
		t.Fatalf("the third connection was served: %q %v", b, err)
	}
	// One held connection ends: a new one is served again.
	held[0].Close()
	var resp *http.Response
	for range 100 {
		u, _ := url.Parse("http://" + ln.Addr().String())
		cl := &http.Client{Timeout: time.Minute, Transport: &http.Transport{Proxy: http.ProxyURL(u), DisableKeepAlives: true}}
		if resp, err = cl.Get("http://allowed.test/"); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond) // the slot frees when the proxy sees the close
	}
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after a slot freed: %v", err)
	}
	resp.Body.Close()
}

// TestUpstreamHeadBounded: the command chooses the upstream too, and one
// that answers with a header line that never ends is read no further than
// a request head would be: the client gets a 502 and the proxy stops
// reading (the server's writes fail long before it has sent 64 MiB).
func TestUpstreamHeadBounded(t *testing.T) {
	n := egresstest.New(t)
	var sent atomic.Int64
	n.TCP("endless.test", 80, func(c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Endless: ")
		chunk := []byte(strings.Repeat("a", 64<<10))
		c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		for sent.Load() < 64<<20 {
			k, err := c.Write(chunk)
			sent.Add(int64(k))
			if err != nil {
				return
			}
		}
	})
	f := start(t, n, false, []string{"endless.test"}, nil)
	c, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	io.WriteString(c, "GET http://endless.test/ HTTP/1.1\r\nHost: endless.test\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer: %v (the upstream sent %d bytes)", err, sent.Load())
	}
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
	if s := sent.Load(); s >= 64<<20 {
		t.Fatalf("the proxy read all %d bytes of the upstream's head", s)
	}
}
