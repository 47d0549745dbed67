package egress

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// maxHead bounds a request's or an answer's line and headers (and the
// client's and an upstream's read buffers).
const maxHead = 64 << 10

// errHeadTooLarge is a request or answer head past maxHead.
var errHeadTooLarge = errors.New("head too large")

// head peeks at the next request's (or answer's) head — the first line and
// headers — without consuming it, so the Host lines can be read as sent
// (net/http drops the Host header of an absolute-URI request, which is the
// one to check), and so that net/http, which bounds neither, reads only a
// head that fits in br. The slice is valid until br is read. Each byte is
// looked at a bounded number of times, however the peer trickles it.
func head(br *bufio.Reader) ([]byte, error) {
	from := 0 // where an end not yet seen could start
	for n := 1; ; {
		_, err := br.Peek(n)
		b, _ := br.Peek(br.Buffered())
		// The head ends at the first empty line, CRLF or bare LF.
		for i := from; i < len(b); i++ {
			if b[i] != '\n' {
				continue
			}
			if i+1 < len(b) && b[i+1] == '\n' {
				return b[:i+2], nil
			}
			if i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n' {
				return b[:i+3], nil
			}
			if i+2 >= len(b) {
				break // the end, if any, is not all here yet
			}
			from = i + 1
		}
		if from < len(b)-2 {
			from = max(from, len(b)-2)
		}
		if err != nil {
			return nil, err
		}
		if n >= br.Size() {
			return nil, errHeadTooLarge
		}
		n = min(br.Buffered()+1, br.Size())
	}
}

// hostLines returns the values of every Host header in a request head.
func hostLines(h []byte) []string {
	var out []string
	lines := bytes.Split(h, []byte("\n"))
	for _, l := range lines[1:] {
		k, v, ok := bytes.Cut(l, []byte(":"))
		if ok && strings.EqualFold(string(bytes.TrimSpace(k)), "host") {
			out = append(out, string(bytes.TrimSpace(v)))
		}
	}
	return out
}

// splitHostPort splits an authority into a host (no brackets) and a port,
// defaulting the port to def.
func splitHostPort(hp string, def int) (string, int, bool) {
	host, ps, err := net.SplitHostPort(hp)
	if err != nil {
		if strings.HasPrefix(hp, "[") && strings.HasSuffix(hp, "]") {
			return hp[1 : len(hp)-1], def, hp != "[]"
		}
		if strings.Contains(hp, ":") || hp == "" {
			return "", 0, false
		}
		return hp, def, def != 0
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 1 || port > 65535 || host == "" {
		return "", 0, false
	}
	return host, port, true
}

// sameHost compares two host names or addresses as DNS would.
func sameHost(a, b string) bool {
	if ca, ok := CanonicalName(a); ok {
		a = ca
	}
	if cb, ok := CanonicalName(b); ok {
		b = cb
	}
	return strings.EqualFold(a, b)
}

// serveHTTP serves HTTP proxy requests on c until it closes: CONNECT turns
// the connection into a tunnel; absolute-URI requests are forwarded, one
// upstream connection kept while requests go to the same place.
func (p *Proxy) serveHTTP(ctx context.Context, c net.Conn, br *bufio.Reader) {
	var up *upstream
	defer func() { up.close(p) }()
	for {
		h, err := head(br)
		if err != nil {
			if errors.Is(err, errHeadTooLarge) {
				writeStatus(c, http.StatusRequestHeaderFieldsTooLarge, "the request head is over 64 KiB")
			}
			return
		}
		hosts := hostLines(h)
		req, err := http.ReadRequest(br)
		if err != nil {
			writeStatus(c, http.StatusBadRequest, "malformed request: "+err.Error())
			return
		}
		if req.Method == http.MethodConnect {
			up.close(p)
			up = nil
			p.serveConnect(ctx, c, br, req, hosts)
			return
		}
		c.SetReadDeadline(time.Time{})
		keep := true
		up, keep = p.forward(ctx, c, br, req, hosts, up)
		if !keep {
			return
		}
		c.SetReadDeadline(time.Now().Add(idleTimeout))
	}
}

// idleTimeout closes a client connection that sends no next request.
const idleTimeout = 2 * time.Minute

// serveConnect opens a tunnel to the authority a CONNECT names.
func (p *Proxy) serveConnect(ctx context.Context, c net.Conn, br *bufio.Reader, req *http.Request, hosts []string) {
	host, port, ok := splitHostPort(req.RequestURI, 0)
	if !ok {
		writeStatus(c, http.StatusBadRequest, "CONNECT takes host:port")
		return
	}
	if len(hosts) > 1 || (len(hosts) == 1 && !sameAuthority(hosts[0], host, port)) {
		d := p.deny(&Conn{Proto: "connect", Host: host, Port: port, Start: time.Now()},
			Verdict{Rule: RuleHost, Reason: fmt.Sprintf("the Host header names %q, the CONNECT target %s", strings.Join(hosts, ", "), joinHostPort(host, port))})
		writeDenial(c, d)
		return
	}
	dst, d, err := p.connect(ctx, "connect", host, port)
	switch {
	case d != nil:
		writeDenial(c, d)
		return
	case err != nil:
		writeStatus(c, http.StatusBadGateway, err.Error())
		return
	}
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		dst.conn.Close()
		p.record(dst.rec)
		return
	}
	c.SetReadDeadline(time.Time{})
	p.tunnel(ctx, c, br, dst)
}

// sameAuthority reports whether a Host header value names host:port (a
// missing port is taken as the tunnel's).
func sameAuthority(hdr, host string, port int) bool {
	h, pt, ok := splitHostPort(hdr, port)
	return ok && pt == port && sameHost(h, host)
}

// upstream is the connection behind absolute-URI requests.
type upstream struct {
	key string
	dst *dest
	br  *bufio.Reader
}

func (u *upstream) close(p *Proxy) {
	if u == nil {
		return
	}
	u.dst.conn.Close()
	p.record(u.dst.rec)
}

// hopHeaders are the connection's own headers, never forwarded.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// forward sends one absolute-URI request upstream and relays the answer.
// It returns the upstream to keep (nil when none) and whether the client
// connection stays open.
func (p *Proxy) forward(ctx context.Context, c net.Conn, br *bufio.Reader, req *http.Request, hosts []string, up *upstream) (*upstream, bool) {
	defer req.Body.Close()
	if req.URL.Scheme != "http" || req.URL.Host == "" {
		up.close(p)
		writeStatus(c, http.StatusBadRequest, "moat's egress proxy takes absolute http:// URIs (GET http://host/path) and CONNECT host:port for everything else")
		return nil, false
	}
	host, port, ok := splitHostPort(req.URL.Host, 80)
	if !ok {
		up.close(p)
		writeStatus(c, http.StatusBadRequest, "bad host in the URI")
		return nil, false
	}
	if len(hosts) > 1 || (len(hosts) == 1 && !sameAuthority(hosts[0], host, port)) {
		d := p.deny(&Conn{Proto: "http", Host: host, Port: port, Start: time.Now()},
			Verdict{Rule: RuleHost, Reason: fmt.Sprintf("the Host header names %q, the URI %s", strings.Join(hosts, ", "), joinHostPort(host, port))})
		writeDenial(c, d)
		return up, !req.Close && drain(req)
	}
	key := joinHostPort(host, port)
	if up != nil && up.key != key {
		up.close(p)
		up = nil
	}
	reused := up != nil
	dial := func() bool {
		dst, d, err := p.connect(ctx, "http", host, port)
		switch {
		case d != nil:
			writeDenial(c, d)
			return false
		case err != nil:
			writeStatus(c, http.StatusBadGateway, err.Error())
			return false
		}
		up = &upstream{key: key, dst: dst, br: bufio.NewReaderSize(dst.conn, maxHead)}
		return true
	}
	if up == nil && !dial() {
		return nil, !req.Close && drain(req)
	}
	if strings.EqualFold(req.Header.Get("Expect"), "100-continue") {
		io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n")
	}
	upgrade := req.Header.Get("Upgrade")
	for _, h := range hopHeaders {
		req.Header.Del(h)
	}
	req.Header.Del("Expect")
	if upgrade != "" {
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", upgrade)
	}
	if _, ok := req.Header["User-Agent"]; !ok {
		req.Header["User-Agent"] = []string{""} // net/http would add its own
	}
	req.RequestURI = ""
	resp, err := p.roundTrip(up, req)
	if err != nil && reused && retryable(req, err) {
		// The kept connection was closed by the server meanwhile: once more
		// on a fresh one, as clients do.
		up.close(p)
		up = nil
		if !dial() {
			return nil, false
		}
		resp, err = p.roundTrip(up, req)
	}
	if err != nil {
		up.close(p)
		writeStatus(c, http.StatusBadGateway, err.Error())
		return nil, false
	}
	rec := up.dst.rec
	dw := &counter{w: c}
	err = resp.Write(dw)
	rec.Down += dw.n
	if err != nil {
		up.close(p)
		return nil, false
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// The connection is the upgraded protocol's from here on.
		n1, n2 := relay(c, br, up.dst.conn, up.br)
		rec.Up, rec.Down = rec.Up+n1, rec.Down+n2
		up.close(p)
		return nil, false
	}
	if resp.Close || req.Close {
		up.close(p)
		return nil, !req.Close && !resp.Close
	}
	return up, true
}

// roundTrip sends req on up and reads the answer (past any 1xx but 101).
func (p *Proxy) roundTrip(up *upstream, req *http.Request) (*http.Response, error) {
	cw := &counter{w: up.dst.conn}
	err := req.Write(cw)
	up.dst.rec.Up += cw.n
	if err != nil {
		return nil, fmt.Errorf("sending the request upstream: %w", err)
	}
	resp, err := readResponse(up.br, req)
	for err == nil && resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
		resp, err = readResponse(up.br, req)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the answer upstream: %w", err)
	}
	return resp, nil
}

// readResponse reads an answer whose head fits in br (maxHead): the
// upstream is the command's choice, and net/http bounds no answer's head.
func readResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	if _, err := head(br); err != nil {
		return nil, err
	}
	return http.ReadResponse(br, req)
}

// retryable: a request without a body whose kept connection ended before
// any answer may be sent again.
func retryable(req *http.Request, err error) bool {
	idempotent := req.Method == http.MethodGet || req.Method == http.MethodHead || req.Method == http.MethodOptions
	return idempotent && req.ContentLength == 0 && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE))
}

// drain reads what is left of a refused request's body (bounded), so the
// connection can carry the next request; false when too much is left.
func drain(req *http.Request) bool {
	n, _ := io.Copy(io.Discard, io.LimitReader(req.Body, 1<<20))
	return n < 1<<20
}

// writeDenial answers a refused HTTP or CONNECT request: 403, the reason in
// the body and in X-Moat-Deny.
func writeDenial(w io.Writer, d *Denial) {
	body := d.String() + "\n"
	h := http.Header{}
	h.Set("X-Moat-Deny", d.Header())
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	var b strings.Builder
	b.WriteString("HTTP/1.1 403 Forbidden\r\n")
	h.Write(&b)
	b.WriteString("\r\n")
	b.WriteString(body)
	io.WriteString(w, b.String())
}

// writeStatus answers with a plain message and closes the exchange.
func writeStatus(w io.Writer, code int, msg string) {
	body := "moat egress proxy: " + msg + "\n"
	fmt.Fprintf(w, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		code, http.StatusText(code), len(body), body)
}

// counter counts the bytes written through it. An answer's body reaches
// it through ReadFrom and is copied in 256 KiB steps: with net/http's own
// 32 KiB, through the upstream's reader, body and limit, a cleartext
// download was measured at ~60% of direct, with 256 KiB ~76%
// (docs/performance.md, "Egress").
type counter struct {
	w io.Writer
	n int64
}

// bodyBufs hold the body copy's buffers: one per answer being relayed.
var bodyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

func (c *counter) ReadFrom(r io.Reader) (int64, error) {
	b := bodyBufs.Get().(*[]byte)
	defer bodyBufs.Put(b)
	n, err := io.CopyBuffer(struct{ io.Writer }{c.w}, struct{ io.Reader }{r}, *b)
	c.n += n
	return n, err
}

func (c *counter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}
