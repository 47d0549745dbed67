//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/audit"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/moatsec/moat/test/testbin"
)

// TestAuditdSurvivesKills publishes 10,000 events while auditd is killed
// with SIGKILL again and again; once it is back for good, every event id is
// in the store exactly once and the store verifies.
func TestAuditdSurvivesKills(t *testing.T) {
	auditdSurvivesKills(t, 10000, 4)
}

// TestAuditdSurvivesKillsMidBatch: the same with 64 writers at once, so
// that most events travel in batches (one message, one ack, many events;
// docs/bus.md), which auditd is killed in the middle of: every event of
// every batch is stored exactly once, and the store verifies.
func TestAuditdSurvivesKillsMidBatch(t *testing.T) {
	if pub := auditdSurvivesKills(t, 6400, 64); pub.Batches() == 0 {
		t.Fatal("64 writers at once sent no batch: the test proved nothing about batches")
	}
}

func auditdSurvivesKills(t *testing.T, total, writers int) *audit.Publisher {
	e := newEnv(t)
	_, url := startBus(t, e)
	pubConn := dialAs(t, e, url, home.RoleBenchd).Conn()
	pub, err := audit.NewPublisher(pubConn, "benchd", "e2e")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	ids := map[string]bool{}
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < total/writers; i++ {
				ev := &wire.AuditEvent{Kind: "bench.event", Argv: []string{"echo", "token=hunter2"}, Detail: map[string]any{"i": i}}
				if err := pub.Publish(context.Background(), ev); err != nil {
					t.Errorf("publish: %v", err)
					return
				}
				mu.Lock()
				ids[ev.ID] = true
				mu.Unlock()
			}
		}()
	}
	publishing := make(chan struct{})
	go func() { wg.Wait(); close(publishing) }()

	kills := 0
	for {
		p := start(t, e.cmd("auditd"))
		time.Sleep(time.Duration(150+rand.Intn(350)) * time.Millisecond)
		syscall.Kill(p.Cmd.Process.Pid, syscall.SIGKILL)
		<-p.Done
		kills++
		select {
		case <-publishing:
		default:
			continue
		}
		if kills >= 5 {
			break
		}
	}
	if len(ids) != total {
		t.Fatalf("published %d events", len(ids))
	}
	final := start(t, e.cmd("auditd"))
	c := dialWait(t, e, url)
	testbin.Eventually(t, 60*time.Second, "auditd to catch up", func() error {
		st, err := c.AuditStats(context.Background())
		if err != nil {
			return err
		}
		if st.Lag != 0 {
			return &lagError{st.Lag}
		}
		return nil
	})
	syscall.Kill(final.Cmd.Process.Pid, syscall.SIGTERM)
	<-final.Done

	out, err := e.cmd("auditd", "export").Output()
	if err != nil {
		t.Fatalf("auditd export: %v", err)
	}
	seen := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev wire.AuditEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Source == "benchd" {
			seen[ev.ID]++
			if strings.Contains(strings.Join(ev.Argv, " "), "hunter2") {
				t.Fatalf("a secret reached the store: %v", ev.Argv)
			}
		}
	}
	for id := range ids {
		if seen[id] != 1 {
			t.Fatalf("event %s stored %d times (after %d kills)", id, seen[id], kills)
		}
	}
	if len(seen) != total {
		t.Fatalf("the store holds %d benchd events, want %d", len(seen), total)
	}
	verify := e.cmd("auditd", "verify")
	if out, err := verify.CombinedOutput(); err != nil || !strings.Contains(string(out), `"ok": true`) {
		t.Fatalf("auditd verify: %v\n%s", err, out)
	}
	t.Logf("%d events (%d batch messages), %d kills of auditd", total, pub.Batches(), kills)
	return pub
}

type lagError struct{ n uint64 }

func (e *lagError) Error() string { return fmt.Sprintf("%d events not yet stored", e.n) }

// TestAuditCLI drives the audit trail of a real run through moat audit.
func TestAuditCLI(t *testing.T) {
	e := newEnv(t)
	_, url := startBus(t, e)
	start(t, e.cmd("profiled"))
	start(t, e.cmd("auditd"))
	c := dialWait(t, e, url)
	waitService(t, c, "auditd", 1)
	for i := 0; i < 5; i++ {
		if out, err := e.cmd("moat", "resolve", "--workspace", e.ws, "--profile", "workspace-write").CombinedOutput(); err != nil {
			t.Fatalf("resolve: %v\n%s", err, out)
		}
	}
	moat := func(args ...string) string {
		out, err := e.cmd("moat", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("moat %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	testbin.Eventually(t, 10*time.Second, "events stored", func() error {
		out, _ := e.cmd("moat", "audit", "query", "--kind", "profile.resolved", "--json").Output()
		if strings.Count(string(out), "\n") < 5 {
			return exec.ErrNotFound
		}
		return nil
	})
	if out := moat("audit", "query", "--kind", "profile.resolved"); !strings.Contains(out, "profile.resolved") || !strings.Contains(out, "SEQ") {
		t.Fatalf("audit query:\n%s", out)
	}
	if out := moat("audit", "verify"); !strings.HasPrefix(out, "OK: ") {
		t.Fatalf("audit verify:\n%s", out)
	}
	if out := moat("audit", "stats"); !strings.Contains(out, "smaller than JSON lines") {
		t.Fatalf("audit stats:\n%s", out)
	}
	if out := moat("audit", "export"); strings.Count(out, "\n") < 5 || !strings.Contains(out, `"kind":"profile.resolved"`) {
		t.Fatalf("audit export:\n%s", out)
	}
	if out := moat("audit", "hash", "alice"); !strings.HasPrefix(out, "user:") || strings.Contains(out, "alice") {
		t.Fatalf("audit hash: %s", out)
	}
}

// TestAuditLargeEvents: one run with a 200 KB argument must not make the
// trail unreadable (issue 9: `moat audit query` and `export` answered 413
// for everyone). The event holds the argument cut, with a marker and the
// hash of the whole; query and export page by bytes.
func TestAuditLargeEvents(t *testing.T) {
	e := newEnv(t)
	_, url := startBus(t, e)
	start(t, e.cmd("profiled"))
	start(t, e.cmd("policyd", "--approval-timeout", "2s"))
	start(t, e.cmd("sandboxd"))
	start(t, e.cmd("auditd"))
	c := dialWait(t, e, url)
	waitService(t, c, "sandboxd", 1)
	waitService(t, c, "auditd", 1)
	moat := func(args ...string) (string, string, int) {
		cmd := e.cmd("moat", args...)
		cmd.Dir = e.ws
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errb.String(), code
	}
	// Two arguments of 100 KB: 200 KB in all (one execve string may not pass 128 KiB).
	a, b := strings.Repeat("a", 100<<10), strings.Repeat("b", 100<<10)
	for i := 0; i < 3; i++ {
		if _, errOut, code := moat("run", "--profile", "workspace-write", "--", "true", a, b); code != 0 {
			t.Fatalf("run with a 200 KB argument: exit %d\n%s", code, errOut)
		}
	}
	for i := 0; i < 20; i++ {
		moat("run", "--profile", "workspace-write", "--", "true", fmt.Sprint(i))
	}
	var out string
	testbin.Eventually(t, 20*time.Second, "the runs on record", func() error {
		o, errOut, code := moat("audit", "query", "--kind", "run.exit", "--limit", "1000", "--json")
		if code != 0 {
			return fmt.Errorf("moat audit query: exit %d: %s", code, errOut)
		}
		if n := strings.Count(o, "\n"); n < 23 {
			return fmt.Errorf("%d run.exit events", n)
		}
		out = o
		return nil
	})
	var big *wire.StoredEvent
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev wire.StoredEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		if len(ev.Event.Argv) > 1 && strings.HasPrefix(ev.Event.Argv[1], "aaaa") {
			big = &ev
		}
	}
	sum := sha256.Sum256([]byte(a))
	if big == nil || len(big.Event.Argv[1]) > audit.MaxFieldBytes || !strings.Contains(big.Event.Argv[1], hex.EncodeToString(sum[:])) {
		if big == nil {
			t.Fatal("no run.exit event with the large argument")
		}
		a1 := big.Event.Argv[1]
		t.Fatalf("the 100 KB argument is not cut with its hash: %d bytes, ends %q", len(a1), a1[max(0, len(a1)-100):])
	}
	export, errOut, code := moat("audit", "export")
	if code != 0 || strings.Count(export, `"kind":"run.exit"`) < 23 {
		t.Fatalf("moat audit export: exit %d\n%s", code, errOut)
	}
	// --limit is the number printed in all, then where to go on.
	out, _, code = moat("audit", "query", "--kind", "run.exit", "--limit", "5")
	if code != 0 || strings.Count(out, "run.exit") != 5 || !strings.Contains(out, "(more: --cursor ") {
		t.Fatalf("moat audit query --limit 5: exit %d\n%s", code, out)
	}
	if out, _, code := moat("audit", "--help"); code != 0 || !strings.Contains(out, "export") {
		t.Fatalf("moat audit --help: exit %d\n%s", code, out)
	}
	if _, errOut, code := moat("audit", "export", "--json"); code != 2 || !strings.Contains(errOut, "-json") {
		t.Fatalf("moat audit export --json was accepted: exit %d\n%s", code, errOut)
	}
}

// TestAuditDamageAndAnchor drives issue 16's damage cases through the real
// binaries. A deleted last segment passes a verify that looks only inside
// the store; against the anchor busd keeps it fails, counting the missing
// records, and auditd refuses to append over it. A flipped byte in the
// active segment stops auditd from storing (naming segment, offset and the
// command to run) without cutting anything, while queries still answer.
func TestAuditDamageAndAnchor(t *testing.T) {
	e := newEnv(t)
	_, url := startBus(t, e)
	anchorDir := t.TempDir()
	storeDir := filepath.Join(e.home, "audit")
	auditd := func() *proc {
		return start(t, e.cmd("auditd", "--segment-bytes", "1024", "--anchor-dir", anchorDir))
	}
	c := dialWait(t, e, url)
	pub, err := audit.NewPublisher(dialAs(t, e, url, home.RoleBenchd).Conn(), "benchd", "e2e")
	if err != nil {
		t.Fatal(err)
	}
	publish := func(n int) {
		for i := 0; i < n; i++ {
			if err := pub.Publish(context.Background(), &wire.AuditEvent{Kind: "bench.event", Detail: map[string]any{"i": i}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	drained := func() {
		testbin.Eventually(t, 30*time.Second, "auditd to catch up", func() error {
			st, err := c.AuditStats(context.Background())
			if err != nil {
				return err
			}
			if st.Lag != 0 {
				return &lagError{st.Lag}
			}
			return nil
		})
	}
	stop := func(p *proc) {
		syscall.Kill(p.Cmd.Process.Pid, syscall.SIGTERM)
		<-p.Done
	}
	moat := func(args ...string) (string, int) {
		out, err := e.cmd("moat", args...).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	offline := func(args ...string) (string, int) {
		out, err := e.cmd("auditd", append([]string{"verify"}, args...)...).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}

	p := auditd()
	waitService(t, c, "auditd", 1)
	for i := 0; i < 6; i++ { // a batch at a time, so there are several segments
		publish(50)
		drained()
	}
	stop(p) // a clean stop anchors the whole tail
	for _, from := range []string{"bus", anchorDir} {
		if out, code := offline("--anchor", from); code != 0 || !strings.Contains(out, `"anchor_size"`) {
			t.Fatalf("auditd verify --anchor %s on a whole store: exit %d\n%s", from, code, out)
		}
	}

	// The last segment deleted: only the anchor sees it.
	segs, _ := filepath.Glob(filepath.Join(storeDir, "seg-*.log"))
	if len(segs) < 3 {
		t.Fatalf("%d segments", len(segs))
	}
	last := segs[len(segs)-1]
	saved, _ := os.ReadFile(last)
	os.Remove(last)
	if out, code := offline(); code != 0 {
		t.Fatalf("without the anchor, verify should see nothing wrong (exit %d):\n%s", code, out)
	}
	for _, from := range []string{"bus", anchorDir} {
		out, code := offline("--anchor", from)
		if code != 1 || !strings.Contains(out, "records are missing") {
			t.Fatalf("auditd verify --anchor %s after the last segment was deleted: exit %d\n%s", from, code, out)
		}
	}
	p = auditd()
	waitService(t, c, "auditd", 1)
	if out, code := moat("audit", "verify"); code != 1 || !strings.Contains(out, "records are missing") {
		t.Fatalf("moat audit verify after the last segment was deleted: exit %d\n%s", code, out)
	}
	if out, code := moat("audit", "stats"); code != 1 || !strings.Contains(out, "READ-ONLY") {
		t.Fatalf("moat audit stats of a store behind its anchor: exit %d\n%s", code, out)
	}
	publish(10) // they wait in the stream: nothing is appended over the loss
	time.Sleep(time.Second)
	if st, _ := c.AuditStats(context.Background()); st == nil || st.Lag < 10 || st.Consuming {
		t.Fatalf("a store behind its anchor took events: %+v", st)
	}
	stop(p)

	// Put back, it drains again and verifies.
	os.WriteFile(last, saved, 0o600)
	p = auditd()
	waitService(t, c, "auditd", 1)
	drained()
	if out, code := moat("audit", "verify"); code != 0 || !strings.Contains(out, "reaches its anchor") {
		t.Fatalf("moat audit verify once restored: exit %d\n%s", code, out)
	}

	// A byte flipped in the middle of the active segment, then more
	// events acked after it (the reproduction), then a restart.
	segs, _ = filepath.Glob(filepath.Join(storeDir, "seg-*.log"))
	active := segs[len(segs)-1]
	data, _ := os.ReadFile(active)
	data[len(data)/2] ^= 0x01
	os.WriteFile(active, data, 0o600)
	publish(80)
	drained()
	stop(p)
	before, _ := os.ReadFile(active)
	p = auditd()
	waitService(t, c, "auditd", 1)
	testbin.Eventually(t, 10*time.Second, "auditd to say where the damage is", func() error {
		if !strings.Contains(p.Output(), "audit store damaged") {
			return exec.ErrNotFound
		}
		return nil
	})
	log := p.Output()
	if !strings.Contains(log, "segment="+filepath.Base(active)) || !strings.Contains(log, "offset=") || !strings.Contains(log, "auditd verify --dir") {
		t.Fatalf("auditd's log does not name the segment, the offset and the command:\n%s", log)
	}
	after, _ := os.ReadFile(active)
	if !bytes.Equal(before, after) {
		t.Fatalf("the damaged segment was changed: %d bytes, was %d", len(after), len(before))
	}
	if _, err := os.Stat(filepath.Join(storeDir, "broken")); !os.IsNotExist(err) {
		t.Fatalf("records were moved aside: %v", err)
	}
	if out, code := moat("audit", "verify"); code != 1 || !strings.Contains(out, filepath.Base(active)) {
		t.Fatalf("moat audit verify over a flipped byte: exit %d\n%s", code, out)
	}
	if out, code := moat("audit", "query", "--limit", "1000", "--json"); code != 0 || strings.Count(out, "bench.event") < 300 {
		t.Fatalf("read-only queries: exit %d, %d events", code, strings.Count(out, "bench.event"))
	}
}

// TestAuditPagesPastTheReplyLimit: a page of 1,000 events passed the reply
// limit and `moat audit query --limit 1000` and `export` failed (issue 16:
// 512 KiB then; the bus's 8 MiB now, with events of 9 KB). Pages are cut by
// bytes; both print every event asked for.
func TestAuditPagesPastTheReplyLimit(t *testing.T) {
	e := newEnv(t)
	_, url := startBus(t, e)
	start(t, e.cmd("auditd"))
	c := dialWait(t, e, url)
	waitService(t, c, "auditd", 1)
	pub, err := audit.NewPublisher(dialAs(t, e, url, home.RoleBenchd).Conn(), "benchd", "e2e")
	if err != nil {
		t.Fatal(err)
	}
	const total = 1500
	note := strings.Repeat("n", 3000) // three of them: 9 KB an event, 9 MB a page of 1,000
	for i := 0; i < total; i++ {
		if err := pub.PublishAsync(&wire.AuditEvent{Kind: "bench.event", Detail: map[string]any{"i": i, "a": note, "b": note, "c": note}}); err != nil {
			t.Fatal(err)
		}
	}
	testbin.Eventually(t, 60*time.Second, "auditd to store them", func() error {
		st, err := c.AuditStats(context.Background())
		if err != nil {
			return err
		}
		if st.Records < total || st.Lag != 0 {
			return fmt.Errorf("%d records, lag %d", st.Records, st.Lag)
		}
		return nil
	})
	out, err := e.cmd("moat", "audit", "query", "--kind", "bench.event", "--limit", "1000", "--json").CombinedOutput()
	if err != nil || strings.Count(string(out), "\n") != 1000 {
		t.Fatalf("moat audit query --limit 1000: %v, %d lines\n%.500s", err, strings.Count(string(out), "\n"), out)
	}
	out, err = e.cmd("moat", "audit", "export").CombinedOutput()
	if err != nil || strings.Count(string(out), `"kind":"bench.event"`) != total {
		t.Fatalf("moat audit export: %v, %d events\n%.500s", err, strings.Count(string(out), `"kind":"bench.event"`), out)
	}
}
