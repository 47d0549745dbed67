package egress

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"time"
)

// tunnel relays between the client (read through br) and dst once the
// client's first bytes pass: a TLS ClientHello must name the tunnel's host
// (or no host) and carry no encrypted ClientHello; cleartext HTTP is read
// request by request, each Host checked; anything else (ssh, …) is relayed
// as it comes. Nothing the client sent reaches dst before the check.
func (p *Proxy) tunnel(ctx context.Context, c net.Conn, br *bufio.Reader, dst *dest) {
	rec := dst.rec
	defer func() { p.record(rec) }()
	defer dst.conn.Close()
	stop := context.AfterFunc(ctx, func() { dst.conn.Close() })
	defer stop()
	// Server to client from the start: some protocols speak first.
	down := make(chan int64, 1)
	go func() {
		n := copyPlain(c, dst.conn)
		closeWrite(c)
		down <- n
	}()
	up, refused := p.inspect(c, br, dst)
	if refused {
		c.Close()
		dst.conn.Close()
	} else {
		closeWrite(dst.conn)
	}
	rec.Up += up
	rec.Down += <-down
}

// inspect checks the client's first bytes and copies the client's side.
func (p *Proxy) inspect(c net.Conn, br *bufio.Reader, dst *dest) (up int64, refused bool) {
	rec := dst.rec
	first, err := br.Peek(1)
	if err != nil {
		return 0, false
	}
	refuse := func(rule, reason string) (int64, bool) {
		p.report(rec, Verdict{Rule: rule, Reason: reason})
		return up, true
	}
	switch {
	case first[0] == 0x16: // a TLS handshake record
		raw, hello, err := readHello(br)
		if err != nil {
			return refuse(RuleProtocol, "the tunnel's first bytes look like TLS but are not a ClientHello moat can read")
		}
		if slices.Contains(hello.Extensions, 0xfe0d) {
			return refuse(RuleECH, "the ClientHello is encrypted (ECH), so the server it names cannot be checked")
		}
		if hello.ServerName != "" && !sameHost(hello.ServerName, rec.Host) {
			return refuse(RuleSNI, fmt.Sprintf("the TLS server name is %q but the tunnel goes to %s", hello.ServerName, rec.Host))
		}
		n, err := dst.conn.Write(raw)
		up += int64(n)
		if err != nil {
			return up, false
		}
	case isHTTP(br):
		return p.tunnelHTTP(br, dst)
	}
	held, _ := br.Peek(br.Buffered())
	n, err := dst.conn.Write(held)
	br.Discard(n)
	up += int64(n)
	if err != nil {
		return up, false
	}
	return up + copyPlain(dst.conn, c), false
}

// copyPlain copies src to dst through a 32 KiB buffer in user space, never
// by splice: between two loopback TCP sockets — a tunnel's client side is
// always one — the copy measured faster (docs/performance.md, "Egress").
func copyPlain(dst io.Writer, src io.Reader) int64 {
	n, _ := io.Copy(struct{ io.Writer }{dst}, struct{ io.Reader }{src})
	return n
}

// report notes a denial on a connection whose record is written later.
func (p *Proxy) report(rec *Conn, v Verdict) {
	d := Denial{Proto: rec.Proto, Host: rec.Host, Port: rec.Port, Rule: v.Rule, Reason: v.Reason, Fix: p.cfg.Policy.Fix(rec.Host, rec.Port, v)}
	rec.Allowed, rec.Rule, rec.Reason = false, v.Rule, v.Reason
	p.remember(d)
}

// tunnelHTTP forwards cleartext HTTP requests through a tunnel, each one's
// Host checked against the tunnel's host. After an Upgrade request the rest
// is relayed as it comes.
func (p *Proxy) tunnelHTTP(br *bufio.Reader, dst *dest) (up int64, refused bool) {
	rec := dst.rec
	for {
		h, err := head(br)
		if err != nil {
			if errors.Is(err, errHeadTooLarge) {
				p.report(rec, Verdict{Rule: RuleProtocol, Reason: "a request head in the tunnel is over 64 KiB"})
				return up, true
			}
			return up, false
		}
		hosts := hostLines(h)
		if len(hosts) > 1 || (len(hosts) == 1 && !sameAuthority(hosts[0], rec.Host, rec.Port)) {
			p.report(rec, Verdict{Rule: RuleHost, Reason: fmt.Sprintf("a request in the tunnel to %s names Host %q", joinHostPort(rec.Host, rec.Port), hosts)})
			return up, true
		}
		req, err := http.ReadRequest(br)
		if err != nil {
			p.report(rec, Verdict{Rule: RuleProtocol, Reason: "malformed HTTP request in the tunnel: " + err.Error()})
			return up, true
		}
		if req.URL.Host != "" && !sameAuthority(req.URL.Host, rec.Host, rec.Port) {
			p.report(rec, Verdict{Rule: RuleHost, Reason: fmt.Sprintf("a request in the tunnel to %s names %s", joinHostPort(rec.Host, rec.Port), req.URL.Host)})
			return up, true
		}
		upgrade := req.Header.Get("Upgrade") != ""
		if _, ok := req.Header["User-Agent"]; !ok {
			req.Header["User-Agent"] = []string{""}
		}
		cw := &counter{w: dst.conn}
		err = req.Write(cw)
		req.Body.Close()
		up += cw.n
		if err != nil {
			return up, false
		}
		if upgrade {
			n, _ := io.Copy(dst.conn, br)
			return up + n, false
		}
	}
}

// httpMethods start a cleartext HTTP request (and "PRI " the HTTP/2 preface,
// refused by the parser since a tunnel carries HTTP/1 only).
var httpMethods = [][]byte{[]byte("GET "), []byte("POST "), []byte("PUT "), []byte("HEAD "), []byte("DELETE "),
	[]byte("OPTIONS "), []byte("PATCH "), []byte("TRACE "), []byte("CONNECT "), []byte("PRI ")}

// isHTTP reports whether the buffered bytes start an HTTP request; when
// they are a prefix of a method it waits for the rest of the method.
func isHTTP(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	for _, m := range httpMethods {
		if len(b) < len(m) && bytes.HasPrefix(m, b) {
			b, _ = br.Peek(len(m))
		}
		if bytes.HasPrefix(b, m) {
			return true
		}
	}
	return false
}

// maxHello bounds the bytes read for one ClientHello.
const maxHello = 64 << 10

// readHello reads a TLS ClientHello with crypto/tls's own parser and
// returns the bytes it read (to be forwarded as they were) and the hello.
func readHello(br *bufio.Reader) ([]byte, *tls.ClientHelloInfo, error) {
	var raw bytes.Buffer
	hc := &helloConn{r: io.TeeReader(io.LimitReader(br, maxHello), &raw)}
	var hello *tls.ClientHelloInfo
	stop := errors.New("hello read")
	tls.Server(hc, &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		hello = h
		return nil, stop
	}}).Handshake()
	if hello == nil {
		return nil, nil, errors.New("no ClientHello")
	}
	return raw.Bytes(), hello, nil
}

// helloConn feeds crypto/tls the client's bytes and swallows its answer.
type helloConn struct{ r io.Reader }

var errReadOnly = errors.New("read-only")

func (h *helloConn) Read(b []byte) (int, error)         { return h.r.Read(b) }
func (h *helloConn) Write(b []byte) (int, error)        { return 0, errReadOnly }
func (h *helloConn) Close() error                       { return nil }
func (h *helloConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (h *helloConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (h *helloConn) SetDeadline(t time.Time) error      { return nil }
func (h *helloConn) SetReadDeadline(t time.Time) error  { return nil }
func (h *helloConn) SetWriteDeadline(t time.Time) error { return nil }

// closeWrite half-closes c when it can, so the other side sees EOF.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else {
		c.Close()
	}
}

// relay copies both ways until both directions end and returns the bytes
// each way.
func relay(client net.Conn, clientR io.Reader, server net.Conn, serverR io.Reader) (up, down int64) {
	done := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(client, serverR)
		closeWrite(client)
		done <- n
	}()
	up, _ = io.Copy(server, clientR)
	closeWrite(server)
	return up, <-done
}
