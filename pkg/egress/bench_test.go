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

// BenchmarkHTTPSSmall: one small HTTPS GET on a fresh connection, direct
// and through the proxy, interleaved in one loop so the machine's load
// falls on both; p50 of each and the difference.
func BenchmarkHTTPSSmall(b *testing.B) {
	f, small, _ := benchWorld(b)
	real := map[string]string{"small.test:443": small.Addr}
	clients := map[string]*http.Client{"direct": {Transport: transport(f, false, real)}, "proxy": {Transport: transport(f, true, real)}}
	lat := map[string][]time.Duration{}
	for b.Loop() {
		for _, mode := range []string{"direct", "proxy"} {
			t0 := time.Now()
			resp, err := clients[mode].Get("https://small.test/")
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			lat[mode] = append(lat[mode], time.Since(t0))
		}
	}
	d, p := p50(lat["direct"]), p50(lat["proxy"])
	b.ReportMetric(d, "direct-p50-µs")
	b.ReportMetric(p, "proxy-p50-µs")
	b.ReportMetric(p-d, "added-p50-µs")
}

// BenchmarkDownload100MB: 100 MB over HTTPS, direct and through the proxy,
// interleaved; throughput of each and the proxy's share of direct.
func BenchmarkDownload100MB(b *testing.B) {
	f, _, big := benchWorld(b)
	real := map[string]string{"big.test:443": big.Addr}
	clients := map[string]*http.Client{"direct": {Transport: transport(f, false, real)}, "proxy": {Transport: transport(f, true, real)}}
	took := map[string]time.Duration{}
	for b.Loop() {
		for _, mode := range []string{"direct", "proxy"} {
			t0 := time.Now()
			resp, err := clients[mode].Get("https://big.test/")
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if n != 100<<20 {
				b.Fatalf("got %d bytes", n)
			}
			took[mode] += time.Since(t0)
		}
	}
	mbps := func(d time.Duration) float64 { return float64(b.N) * 100 / d.Seconds() }
	b.ReportMetric(mbps(took["direct"]), "direct-MB/s")
	b.ReportMetric(mbps(took["proxy"]), "proxy-MB/s")
	b.ReportMetric(100*mbps(took["proxy"])/mbps(took["direct"]), "proxy-%-of-direct")
}

func p50(l []time.Duration) float64 {
	slices.Sort(l)
	return float64(l[len(l)/2].Microseconds())
}
