package egress

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"time"
)

// SOCKS5 (RFC 1928), the subset the proxy serves: no authentication, the
// CONNECT command, destinations by name (socks5h) or address.
const (
	socksVersion     = 5
	socksNoAuth      = 0
	socksNoMethod    = 0xff
	socksConnect     = 1
	socksAtypV4      = 1
	socksAtypName    = 3
	socksAtypV6      = 4
	socksOK          = 0
	socksFailure     = 1
	socksNotAllowed  = 2 // "connection not allowed by ruleset"
	socksUnreachable = 4 // host unreachable
	socksNoCommand   = 7
	socksNoAtyp      = 8
)

// serveSOCKS serves one SOCKS5 connection.
func (p *Proxy) serveSOCKS(ctx context.Context, c net.Conn, br *bufio.Reader) {
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(br, methods); err != nil {
		return
	}
	method := byte(socksNoMethod)
	for _, m := range methods {
		if m == socksNoAuth {
			method = socksNoAuth
		}
	}
	if _, err := c.Write([]byte{socksVersion, method}); err != nil || method == socksNoMethod {
		return
	}
	req := make([]byte, 4)
	if _, err := io.ReadFull(br, req); err != nil || req[0] != socksVersion {
		return
	}
	var host string
	switch req[3] {
	case socksAtypV4, socksAtypV6:
		b := make([]byte, 4)
		if req[3] == socksAtypV6 {
			b = make([]byte, 16)
		}
		if _, err := io.ReadFull(br, b); err != nil {
			return
		}
		a, _ := netip.AddrFromSlice(b)
		host = a.Unmap().String()
	case socksAtypName:
		n, err := br.ReadByte()
		if err != nil {
			return
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(br, b); err != nil {
			return
		}
		host = string(b)
	default:
		socksReply(c, socksNoAtyp)
		return
	}
	pb := make([]byte, 2)
	if _, err := io.ReadFull(br, pb); err != nil {
		return
	}
	port := int(binary.BigEndian.Uint16(pb))
	if req[1] != socksConnect {
		socksReply(c, socksNoCommand)
		return
	}
	if port == 0 {
		socksReply(c, socksFailure)
		return
	}
	dst, d, err := p.connect(ctx, "socks5", host, port)
	switch {
	case d != nil:
		socksReply(c, socksNotAllowed)
		return
	case err != nil:
		socksReply(c, socksUnreachable)
		return
	}
	if err := socksReply(c, socksOK); err != nil {
		dst.conn.Close()
		p.record(dst.rec)
		return
	}
	c.SetReadDeadline(time.Time{})
	p.tunnel(ctx, c, br, dst)
}

// socksReply answers a request; the bound address is left zero.
func socksReply(c net.Conn, code byte) error {
	_, err := c.Write([]byte{socksVersion, code, 0, socksAtypV4, 0, 0, 0, 0, 0, 0})
	return err
}
