package egress_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/egress"
	"github.com/moatsec/moat/pkg/egress/egresstest"
)

// record waits for the one record of host:port.
func (f *fixture) record(t *testing.T, host string, port int) egress.Conn {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		for _, r := range f.records() {
			if r.Host == host && r.Port == port {
				return r
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no record for %s:%d in %+v", host, port, f.records())
	return egress.Conn{}
}

// TestBytesCountedExactly: a connection's record carries exactly the bytes
// that went each way — for forwarded HTTP the bytes the client read (a body
// of known length, one larger than any buffer, then a chunked one on the
// same kept connection), for a tunnel the bytes each side sent.
func TestBytesCountedExactly(t *testing.T) {
	n := egresstest.New(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 3<<16) // 3 MiB
	var upstream bytes.Buffer                              // the requests as the server read them
	n.TCP("plain.test", 80, func(c net.Conn) {
		br := bufio.NewReader(io.TeeReader(c, &upstream))
		for i := 0; ; i++ {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			if i == 0 {
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Kind: sized\r\n\r\n", len(big))
				c.Write(big)
			} else {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
			}
		}
	})
	n.TCP("tunnel.test", 22, func(c net.Conn) {
		got, _ := io.Copy(io.Discard, io.LimitReader(c, 1<<20+7))
		fmt.Fprintf(c, "%d", got)
		c.Write(big)
	})
	f := start(t, n, false, []string{"plain.test:80", "tunnel.test:22"}, nil)

	c, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(time.Minute))
	var read bytes.Buffer
	br := bufio.NewReader(io.TeeReader(c, &read))
	for i, want := range []string{string(big), "hello"} {
		fmt.Fprintf(c, "GET http://plain.test/%d HTTP/1.1\r\nHost: plain.test\r\n\r\n", i)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if got := body(t, resp); got != want {
			t.Fatalf("request %d: body of %d bytes, want %d", i, len(got), len(want))
		}
		if i == 0 && resp.Header.Get("X-Kind") != "sized" {
			t.Fatalf("request 0: header %v", resp.Header)
		}
	}
	c.Close()
	rec := f.record(t, "plain.test", 80)
	if rec.Down != int64(read.Len()) || rec.Up != int64(upstream.Len()) {
		t.Errorf("http record up %d down %d; the server read %d, the client %d", rec.Up, rec.Down, upstream.Len(), read.Len())
	}

	c, err = net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	io.WriteString(c, "CONNECT tunnel.test:22 HTTP/1.1\r\nHost: tunnel.test:22\r\n\r\n")
	br = bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	c.Write(bytes.Repeat([]byte("u"), 1<<20+7))
	c.(*net.TCPConn).CloseWrite()
	rest, _ := io.ReadAll(br)
	if want := fmt.Sprint(1<<20+7) + string(big); string(rest) != want {
		t.Fatalf("tunnel answer of %d bytes, want %d (%q…)", len(rest), len(want), rest[:min(len(rest), 20)])
	}
	rec = f.record(t, "tunnel.test", 22)
	if rec.Up != 1<<20+7 || rec.Down != int64(len(rest)) {
		t.Errorf("tunnel record up %d down %d, want %d and %d", rec.Up, rec.Down, 1<<20+7, len(rest))
	}
}
