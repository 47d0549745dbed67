//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/wire"
	"github.com/moatsec/moat/test/testbin"
)

// TestEgressOnRecord runs a command with network through the real stack:
// an allowed connection (to a range the profile names with its port, a
// server on the host's loopback) and a refused one. The result lists the
// refusal, the run's stderr explains it, and each connection is a net.conn
// audit event tied to the run's request and session.
func TestEgressOnRecord(t *testing.T) {
	tool(t, "curl", "apt-get install -y curl")
	e := newEnv(t)
	var hits atomic.Int64
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprint(w, "hello through the proxy")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	toml := fmt.Sprintf("[profiles.lan]\nextends = \"workspace-write\"\nnet = \"allowlist\"\nnet_allow = [\"127.0.0.1/32:%d\"]\n", port)
	if err := os.WriteFile(filepath.Join(e.home, "profiles.toml"), []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	_, url := startBus(t, e)
	start(t, e.cmd("profiled"))
	start(t, e.cmd("policyd", "--approval-timeout", "2s"))
	start(t, e.cmd("sandboxd"))
	start(t, e.cmd("auditd"))
	c := dialWait(t, e, url)
	waitService(t, c, "sandboxd", 1)
	waitService(t, c, "auditd", 1)

	// NO_PROXY lists 127.0.0.1 (the sandbox's own loopback); here the
	// host's is meant, which only the proxy reaches.
	// busd's own port: straight, it is another namespace's loopback; through
	// the proxy, a loopback port the profile does not name.
	busPort := strings.TrimPrefix(url[strings.LastIndex(url, ":"):], ":")
	script := fmt.Sprintf(`export NO_PROXY= no_proxy=; curl -sS http://127.0.0.1:%d/hi; echo; H=denied.example; curl -sS -o /dev/null -w '%%{http_code}' "http://$H/"
B=127.0.0.1:%s; curl -s -m 5 --noproxy '*' "http://$B/"; echo " bus-direct:$?"; curl -s -o /dev/null -w 'bus-proxy:%%{http_code}' "http://$B/"`, port, busPort)
	cmd := e.cmd("moat", "run", "--profile", "lan", "--session", "egress-e2e", "--json", "--", "sh", "-c", script)
	cmd.Dir = e.ws
	out, err := cmd.Output()
	var res wire.RunResult
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		t.Fatalf("moat run: %v %v\n%s", err, jerr, out)
	}
	if string(res.Stdout) != "hello through the proxy\n403 bus-direct:7\nbus-proxy:403" || hits.Load() != 1 {
		t.Fatalf("stdout %q, stderr %q, server hits %d", res.Stdout, res.Stderr, hits.Load())
	}
	if !strings.Contains(string(res.Stderr), "moat: network access to denied.example:80 denied (net.not-allowed)") {
		t.Fatalf("stderr %q", res.Stderr)
	}
	if len(res.NetDenied) != 2 || res.NetDenied[1].Dest != "denied.example:80" || res.NetDenied[1].Rule != "net.not-allowed" || res.NetDenied[1].Fix == "" ||
		res.NetDenied[0].Dest != "127.0.0.1:"+busPort || res.NetDenied[0].Rule != "net.address" {
		t.Fatalf("net_denied %+v", res.NetDenied)
	}

	var events []wire.StoredEvent
	testbin.Eventually(t, 20*time.Second, "three net.conn events", func() error {
		q := e.cmd("moat", "audit", "query", "--kind", wire.KindNetConn, "--json")
		o, err := q.Output()
		if err != nil {
			return fmt.Errorf("moat audit query: %v", err)
		}
		events = nil
		for _, line := range strings.Split(strings.TrimSpace(string(o)), "\n") {
			var ev wire.StoredEvent
			if line != "" && json.Unmarshal([]byte(line), &ev) == nil {
				events = append(events, ev)
			}
		}
		if len(events) != 3 {
			return fmt.Errorf("%d events", len(events))
		}
		return nil
	})
	var allowed, denied *wire.AuditEvent
	for i := range events {
		ev := &events[i].Event
		if ev.RequestID != res.RequestID || ev.SessionID != "egress-e2e" || ev.Source != wire.ServiceSandboxd {
			t.Fatalf("event not tied to the run: %+v", ev)
		}
		switch ev.Verdict {
		case wire.VerdictAllow:
			allowed = ev
		case wire.VerdictDeny:
			if ev.Detail["host"] == "denied.example" {
				denied = ev
			}
		}
	}
	if allowed == nil || denied == nil {
		t.Fatalf("events %+v", events)
	}
	d := allowed.Detail
	if d["host"] != "127.0.0.1" || d["addr"] != fmt.Sprintf("127.0.0.1:%d", port) || d["rule"] != "net.allowed" ||
		d["entry"] != fmt.Sprintf("127.0.0.1/32:%d", port) || d["proto"] != "http" || num(d["bytes_down"]) < 100 || num(d["bytes_up"]) < 20 {
		t.Errorf("allowed event detail %v", d)
	}
	if d := denied.Detail; d["host"] != "denied.example" || d["rule"] != "net.not-allowed" || d["addr"] != "" {
		t.Errorf("denied event detail %v", d)
	}
}

func num(v any) float64 {
	f, _ := v.(float64)
	return f
}
