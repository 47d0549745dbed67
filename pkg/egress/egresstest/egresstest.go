// Package egresstest is a stand-in internet on loopback for tests of the
// egress proxy and of sandboxes that use it: host names map to made-up
// public addresses, and each made-up address and port to a real server on
// 127.0.0.1. Net is both the proxy's Resolver (counting every lookup, so a
// test proves a name was never asked about) and its Dialer (failing the
// test on any address it was not told about, before anything is sent).
package egresstest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/cgi"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Net is the stand-in internet. Safe for concurrent use.
type Net struct {
	t       testing.TB
	mu      sync.Mutex
	names   map[string][]netip.Addr
	routes  map[netip.AddrPort]string // made-up address → real loopback server
	direct  map[string]bool           // real loopback addresses a profile may name
	lookups map[string]int
	dials   []string
	next    byte
	ca      *x509.Certificate
	caKey   *ecdsa.PrivateKey
	caPEM   []byte
}

// New makes an empty stand-in internet, with its own certificate authority.
func New(t testing.TB) *Net {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "moat test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	return &Net{t: t, names: map[string][]netip.Addr{}, routes: map[netip.AddrPort]string{}, direct: map[string]bool{},
		lookups: map[string]int{}, ca: ca, caKey: key, caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// Name makes name resolve to addrs (any addresses: loopback, metadata, …,
// to test that the proxy refuses them).
func (n *Net) Name(name string, addrs ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, a := range addrs {
		n.names[name] = append(n.names[name], netip.MustParseAddr(a))
	}
}

// addrOf is the made-up public address of name, made on first use.
func (n *Net) addrOf(name string) netip.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	if l := n.names[name]; len(l) > 0 {
		return l[0]
	}
	n.next++
	a := netip.AddrFrom4([4]byte{93, 184, 215, n.next}) // never dialed: routes lead to loopback
	n.names[name] = []netip.Addr{a}
	return a
}

// route sends dials of name:port to the real server at addr.
func (n *Net) route(name string, port int, addr string) {
	a := n.addrOf(name)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.routes[netip.AddrPortFrom(a, uint16(port))] = addr
	n.direct[addr] = true
}

// LookupNetIP resolves a name of the stand-in internet; it counts every
// call, and an unknown name is not found.
func (n *Net) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	host = trimDot(host)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.lookups[host]++
	var out []netip.Addr
	for _, a := range n.names[host] {
		if network == "ip" || (network == "ip4") == a.Is4() {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return out, nil
}

func trimDot(s string) string {
	if len(s) > 0 && s[len(s)-1] == '.' {
		return s[:len(s)-1]
	}
	return s
}

// Lookups is how many times name was looked up; "" counts every name.
func (n *Net) Lookups(name string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if name != "" {
		return n.lookups[name]
	}
	total := 0
	for _, c := range n.lookups {
		total += c
	}
	return total
}

// DialContext connects a made-up address to its server, or a real server's
// own loopback address (a profile may name it by range); anything else
// fails the test — a packet would have left for somewhere the test did not
// make — and is not dialed.
func (n *Net) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	n.mu.Lock()
	n.dials = append(n.dials, addr)
	real, routed := n.routes[ap]
	if !routed && n.direct[addr] {
		real, routed = addr, true
	}
	n.mu.Unlock()
	if err != nil || !routed {
		n.t.Errorf("the proxy dialed %s %s, an address the test did not route: it would have left the machine or reached the host", network, addr)
		return nil, fmt.Errorf("egresstest: %s is not routed", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, real)
}

// Dials lists every address dialed, in order.
func (n *Net) Dials() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.dials...)
}

// CAPEM is the certificate authority that signs the servers' certificates.
func (n *Net) CAPEM() []byte { return n.caPEM }

// CAFile writes CAPEM to a file in dir and returns its path.
func (n *Net) CAFile(dir string) string {
	p := filepath.Join(dir, "moat-test-ca.pem")
	if err := os.WriteFile(p, n.caPEM, 0o644); err != nil {
		n.t.Fatal(err)
	}
	return p
}

// CAPool is CAPEM as a pool.
func (n *Net) CAPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(n.ca)
	return p
}

// Server is a server of the stand-in internet.
type Server struct {
	Addr  string       // its real loopback address
	Conns atomic.Int64 // TCP connections accepted
	// Hellos counts TLS handshakes begun (HTTPS servers).
	Hellos atomic.Int64
	mu     sync.Mutex
	hosts  []string
}

// Hosts lists the Host of every HTTP request the server answered.
func (s *Server) Hosts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.hosts...)
}

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	s *Server
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.s.Conns.Add(1)
	}
	return c, err
}

func (n *Net) listen(s *Server) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		n.t.Fatal(err)
	}
	s.Addr = ln.Addr().String()
	n.t.Cleanup(func() { ln.Close() })
	return countingListener{ln, s}
}

// HTTP serves h for name on port 80 of the stand-in internet.
func (n *Net) HTTP(name string, h http.Handler) *Server {
	return n.serveHTTP(name, 80, h, false)
}

// HTTPS serves h for name on port 443, with a certificate for name signed
// by the Net's authority.
func (n *Net) HTTPS(name string, h http.Handler) *Server {
	return n.serveHTTP(name, 443, h, true)
}

func (n *Net) serveHTTP(name string, port int, h http.Handler, tlsOn bool) *Server {
	s := &Server{}
	ln := n.listen(s)
	wrapped := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hosts = append(s.hosts, r.Host)
		s.mu.Unlock()
		h.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: wrapped, ReadHeaderTimeout: 30 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	if tlsOn {
		cert := n.cert(name)
		ln = tls.NewListener(ln, &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			s.Hellos.Add(1)
			return nil, nil
		}, Certificates: []tls.Certificate{cert}})
	}
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	n.t.Cleanup(func() { srv.Close(); <-done })
	n.route(name, port, s.Addr)
	return s
}

// TCP serves handle for name on port; each connection gets its own call.
func (n *Net) TCP(name string, port int, handle func(net.Conn)) *Server {
	s := &Server{}
	ln := n.listen(s)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); defer c.Close(); handle(c) }()
		}
	}()
	n.t.Cleanup(func() { ln.Close(); wg.Wait() })
	n.route(name, port, s.Addr)
	return s
}

// cert is a certificate for name signed by the Net's authority.
func (n *Net) cert(name string) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		n.t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		DNSNames: []string{name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, n.ca, &key.PublicKey, n.caKey)
	if err != nil {
		n.t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// GitHTTPS serves the bare repositories under root over smart HTTP (git
// http-backend) for name on port 443.
func (n *Net) GitHTTPS(name, root string) *Server {
	git, err := exec.LookPath("git")
	if err != nil {
		n.t.Fatalf("git is needed: apt-get install -y git (%v)", err)
	}
	return n.HTTPS(name, &cgi.Handler{Path: git, Args: []string{"http-backend"},
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}})
}

// Tool is the path of an external program a test needs; a missing one
// fails the test with the command that installs it.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		install := map[string]string{"curl": "apt-get install -y curl", "git": "apt-get install -y git", "python3": "apt-get install -y python3"}[name]
		t.Fatalf("%s is needed by this test: %s", name, install)
	}
	return p
}
