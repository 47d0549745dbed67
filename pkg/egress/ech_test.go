package egress_test

import (
	"crypto/tls"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/egress"
)

// clientHello is the first flight of a Go TLS client naming server, with an
// encrypted_client_hello extension (0xfe0d) appended when ech: an outer
// hello whose true server name moat could not read.
func clientHello(t *testing.T, server string, ech bool) []byte {
	t.Helper()
	a, b := net.Pipe()
	go tls.Client(a, &tls.Config{ServerName: server, InsecureSkipVerify: true}).Handshake()
	b.SetReadDeadline(time.Now().Add(time.Minute))
	hdr := make([]byte, 5)
	if _, err := readFull(b, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
	if _, err := readFull(b, body); err != nil {
		t.Fatal(err)
	}
	a.Close()
	b.Close()
	if !ech {
		return append(hdr, body...)
	}
	// The extension: type 0xfe0d, an outer ECH (type 0), HKDF-SHA256,
	// AES-128-GCM, config 7, an empty enc and a 16-byte payload.
	ext := []byte{0xfe, 0x0d, 0, 26, 0, 0, 1, 0, 1, 7, 0, 0, 0, 16}
	ext = append(ext, make([]byte, 16)...)
	// Walk to the extensions: handshake header, version, random, session id,
	// cipher suites, compression methods.
	p := 4 + 2 + 32
	p += 1 + int(body[p])
	p += 2 + int(binary.BigEndian.Uint16(body[p:]))
	p += 1 + int(body[p])
	extLen := binary.BigEndian.Uint16(body[p:])
	binary.BigEndian.PutUint16(body[p:], extLen+uint16(len(ext)))
	body = append(body, ext...)
	hsLen := uint32(body[1])<<16 | uint32(body[2])<<8 | uint32(body[3])
	hsLen += uint32(len(ext))
	body[1], body[2], body[3] = byte(hsLen>>16), byte(hsLen>>8), byte(hsLen)
	binary.BigEndian.PutUint16(hdr[3:], uint16(len(body)))
	return append(hdr, body...)
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func TestECHRefused(t *testing.T) {
	n, srv := world(t)
	f := start(t, n, false, []string{"allowed.test"}, nil)
	for _, tc := range []struct {
		name string
		ech  bool
		rule string
	}{{"plain hello passes", false, ""}, {"encrypted hello refused", true, egress.RuleECH}} {
		t.Run(tc.name, func(t *testing.T) {
			before := srv["allowed-https"].Hellos.Load()
			resp, c := f.connect(t, "allowed.test:443", "")
			if resp.StatusCode != 200 {
				t.Fatalf("CONNECT %d", resp.StatusCode)
			}
			c.SetDeadline(time.Now().Add(time.Minute))
			if _, err := c.Write(clientHello(t, "allowed.test", tc.ech)); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, 1)
			_, err := c.Read(got)
			if tc.ech {
				if err == nil {
					t.Fatalf("the server answered an encrypted hello: % x", got)
				}
				if srv["allowed-https"].Hellos.Load() != before {
					t.Fatal("the encrypted hello reached the server")
				}
				return
			}
			if err != nil || got[0] != 0x16 {
				t.Fatalf("no ServerHello: %v % x", err, got)
			}
		})
	}
	var ech int
	for _, d := range f.denied() {
		if d.Rule == egress.RuleECH {
			ech++
		}
	}
	if ech != 1 {
		t.Fatalf("denials %+v", f.denied())
	}
}
