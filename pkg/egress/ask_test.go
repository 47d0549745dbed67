package egress_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/moatsec/moat/pkg/egress"
	"github.com/moatsec/moat/pkg/egress/egresstest"
)

// askFixture serves a proxy whose Ask hook answers with answer after
// release is closed, counting the questions.
func askFixture(t *testing.T, n *egresstest.Net, answer egress.Answer, release chan struct{}) (*fixture, *atomic.Int64) {
	t.Helper()
	pol, err := egress.NewPolicy("test", false, []string{"allowed.test"}, []string{"other.test:443"})
	if err != nil {
		t.Fatal(err)
	}
	var asks atomic.Int64
	f := &fixture{net: n}
	f.proxy = egress.New(egress.Config{Policy: pol, Resolver: n, Dialer: n,
		Ask: func(ctx context.Context, a egress.Ask) egress.Answer {
			asks.Add(1)
			select {
			case <-release:
			case <-ctx.Done():
				return egress.Answer{Rule: "cancelled"}
			}
			return answer
		}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.proxy.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return f, &asks
}

func get(t *testing.T, f *fixture, u string) (int, string) {
	t.Helper()
	resp, err := f.client().Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Moat-Deny") + string(b)
}

// TestAskOnlyWhatMayBeAsked: a host the lists do not name is asked about;
// a deny entry and a special address never are.
func TestAskOnlyWhatMayBeAsked(t *testing.T) {
	n, s := world(t)
	release := make(chan struct{})
	close(release)
	f, asks := askFixture(t, n, egress.Answer{Rule: "approval.denied", Reason: "alice refused"}, release)
	code, body := get(t, f, "http://other.test/x") // other.test:80 is not listed
	if code != http.StatusForbidden || !strings.Contains(body, "alice refused") || !strings.Contains(body, "net.not-allowed") || asks.Load() != 1 {
		t.Fatalf("refused ask: %d %q, %d asks", code, body, asks.Load())
	}
	for _, u := range []string{"http://127.0.0.1/", "http://169.254.169.254/", "http://[::1]/"} {
		if code, _ := get(t, f, u); code != http.StatusForbidden {
			t.Errorf("%s: %d", u, code)
		}
	}
	c, err := net.Dial("tcp", f.addr) // other.test:443 is denied: CONNECT refused, nothing asked
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "CONNECT other.test:443 HTTP/1.1\r\nHost: other.test:443\r\n\r\n")
	line, _ := io.ReadAll(io.LimitReader(c, 12))
	c.Close()
	if string(line) != "HTTP/1.1 403" || asks.Load() != 1 {
		t.Fatalf("denied CONNECT %q, %d asks", line, asks.Load())
	}
	if s["other-http"].Conns.Load()+s["other-https"].Conns.Load() != 0 || len(n.Dials()) != 0 {
		t.Fatalf("something was dialed: %v", n.Dials())
	}
}

// TestAskForTheRun: connections to one destination wait for one question;
// an answer for the run admits the later ones without asking.
func TestAskForTheRun(t *testing.T) {
	n, s := world(t)
	release := make(chan struct{})
	f, asks := askFixture(t, n, egress.Answer{OK: true, Run: true, Entry: "approval a1 by alice"}, release)
	var wg sync.WaitGroup
	codes := make([]int, 3)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _ = get(t, f, "http://other.test/x")
		}()
	}
	for asks.Load() == 0 {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	if code, _ := get(t, f, "http://other.test/y"); code != http.StatusOK {
		t.Fatalf("after the answer: %d", code)
	}
	if asks.Load() != 1 || codes[0] != 200 || codes[1] != 200 || codes[2] != 200 || s["other-http"].Conns.Load() != 4 {
		t.Fatalf("asks %d, codes %v, connections %d", asks.Load(), codes, s["other-http"].Conns.Load())
	}
}
