package egress_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/egress/egresstest"
)

// Speed against direct loopback in the same run:
//
//	go test ./pkg/egress -run '^$' -bench . -benchtime 200x
//
// small: one HTTPS GET on a fresh connection (TCP, TLS, request), reported
// with its p50; download: 100 MB over HTTPS, reported in MB/s.

func benchWorld(b *testing.B) (*fixture, *egresstest.Server, *egresstest.Server) {
	n := egresstest.New(b)
	chunk := []byte(strings.Repeat("x", 1<<20))
	small := n.HTTPS("small.test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	big := n.HTTPS("big.test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "104857600")
		for range 100 {
			w.Write(chunk)
		}
	}))
	f := start(b, n, false, []string{"small.test", "big.test"}, nil)
	return f, small, big
}

// transport reaches the stand-in servers directly (dialing their loopback
// address) or through the proxy.
func transport(f *fixture, proxied bool, real map[string]string) *http.Transport {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.net.CAPool()}, DisableKeepAlives: true,
		DisableCompression: true}
	if proxied {
		u, _ := url.Parse("http://" + f.addr)
		tr.Proxy = http.ProxyURL(u)
	} else {
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, real[addr])
		}
	}
	return tr
}

func BenchmarkHTTPSSmall(b *testing.B) {
	f, small, _ := benchWorld(b)
	for _, mode := range []string{"direct", "proxy"} {
		b.Run(mode, func(b *testing.B) {
			c := &http.Client{Transport: transport(f, mode == "proxy", map[string]string{"small.test:443": small.Addr})}
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				t0 := time.Now()
				resp, err := c.Get("https://small.test/")
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		})
	}
}

func BenchmarkDownload100MB(b *testing.B) {
	f, _, big := benchWorld(b)
	for _, mode := range []string{"direct", "proxy"} {
		b.Run(mode, func(b *testing.B) {
			c := &http.Client{Transport: transport(f, mode == "proxy", map[string]string{"big.test:443": big.Addr})}
			b.SetBytes(100 << 20)
			for b.Loop() {
				resp, err := c.Get("https://big.test/")
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if n != 100<<20 {
					b.Fatalf("got %d bytes", n)
				}
			}
		})
	}
}
