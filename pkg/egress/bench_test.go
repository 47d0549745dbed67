package egress_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
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
// with its p50; download: 100 MB over HTTPS or HTTP, the median MB/s of
// each side over the rounds (-benchtime 10x or more).

func benchWorld(b *testing.B) (*fixture, *egresstest.Server, *egresstest.Server, *egresstest.Server) {
	n := egresstest.New(b)
	chunk := []byte(strings.Repeat("x", 1<<20))
	small := n.HTTPS("small.test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	hundred := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			n, _ := io.Copy(io.Discard, r.Body)
			fmt.Fprint(w, n)
			return
		}
		w.Header().Set("Content-Length", "104857600")
		for range 100 {
			w.Write(chunk)
		}
	})
	big, bigHTTP := n.HTTPS("big.test", hundred), n.HTTP("big.test", hundred)
	f := start(b, n, false, []string{"small.test", "big.test"}, nil)
	return f, small, big, bigHTTP
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
	f, small, _, _ := benchWorld(b)
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

// BenchmarkDownload100MB: 100 MB over HTTPS (a CONNECT tunnel), direct and
// through the proxy, interleaved round by round; the median of each and the
// proxy's share of direct.
func BenchmarkDownload100MB(b *testing.B) { benchDownload(b, "https") }

// BenchmarkDownload100MBHTTP: the same over cleartext HTTP (an absolute URI
// the proxy forwards, reading the answer's head).
func BenchmarkDownload100MBHTTP(b *testing.B) { benchDownload(b, "http") }

func benchDownload(b *testing.B, scheme string) {
	f, _, big, bigHTTP := benchWorld(b)
	real := map[string]string{"big.test:443": big.Addr, "big.test:80": bigHTTP.Addr}
	clients := map[string]*http.Client{"direct": {Transport: transport(f, false, real)}, "proxy": {Transport: transport(f, true, real)}}
	rate := map[string][]float64{}
	for b.Loop() {
		for _, mode := range []string{"direct", "proxy"} {
			t0 := time.Now()
			resp, err := clients[mode].Get(scheme + "://big.test/")
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if n != 100<<20 {
				b.Fatalf("got %d bytes", n)
			}
			rate[mode] = append(rate[mode], 100/time.Since(t0).Seconds())
		}
	}
	d, p := median(rate["direct"]), median(rate["proxy"])
	b.ReportMetric(d, "direct-MB/s")
	b.ReportMetric(p, "proxy-MB/s")
	b.ReportMetric(100*p/d, "proxy-%-of-direct")
}

// BenchmarkUpload100MB: 100 MB sent over HTTPS (a POST through a CONNECT
// tunnel), direct and through the proxy, interleaved round by round.
func BenchmarkUpload100MB(b *testing.B) {
	f, _, big, _ := benchWorld(b)
	real := map[string]string{"big.test:443": big.Addr}
	clients := map[string]*http.Client{"direct": {Transport: transport(f, false, real)}, "proxy": {Transport: transport(f, true, real)}}
	payload := bytes.Repeat([]byte("x"), 100<<20)
	rate := map[string][]float64{}
	for b.Loop() {
		for _, mode := range []string{"direct", "proxy"} {
			t0 := time.Now()
			resp, err := clients[mode].Post("https://big.test/", "application/octet-stream", bytes.NewReader(payload))
			if err != nil {
				b.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(got) != "104857600" {
				b.Fatalf("the server read %s bytes", got)
			}
			rate[mode] = append(rate[mode], 100/time.Since(t0).Seconds())
		}
	}
	d, p := median(rate["direct"]), median(rate["proxy"])
	b.ReportMetric(d, "direct-MB/s")
	b.ReportMetric(p, "proxy-MB/s")
	b.ReportMetric(100*p/d, "proxy-%-of-direct")
}

func median(l []float64) float64 {
	slices.Sort(l)
	return l[len(l)/2]
}

func p50(l []time.Duration) float64 {
	slices.Sort(l)
	return float64(l[len(l)/2].Microseconds())
}
