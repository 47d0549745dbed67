//go:build linux

package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/moatsec/moat/test/testbin"
)

// worker is a worker host: its own busd as a leaf of the hub, its own
// sandboxd and profiled.
type worker struct {
	name     string
	url      string
	bus      *proc
	sandboxd *proc
}

var readyID = regexp.MustCompile(`sandboxd ready" id=(\S+)`)

// id is the worker's sandboxd instance, as its ready line says.
func (k *worker) id(t *testing.T) string {
	t.Helper()
	var id string
	testbin.Eventually(t, 30*time.Second, k.name+"'s sandboxd ready", func() error {
		m := readyID.FindStringSubmatch(k.sandboxd.Output())
		if m == nil {
			return fmt.Errorf("no ready line")
		}
		id = m[1]
		return nil
	})
	return id
}

// Two worker hosts are leaves of a central hub that runs policyd and
// auditd. Runs for a workspace on worker A are run by A's sandboxd, decided
// and recorded centrally; killing worker B's bus does not disturb them;
// no central request reaches a worker's sandboxd; and a request id that ran
// is refused a second time.
func TestLeafWorkers(t *testing.T) {
	w := newWorld(t)
	base, err := os.MkdirTemp("/var/tmp", "moat-cluster-leaf-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	w.ws = base
	hubClient, hubLeaf, hubMon := testbin.FreePort(t), testbin.FreePort(t), testbin.FreePort(t)
	hubURL := "nats://" + testbin.Addr(hubClient)
	// The keys of both workers exist before the hub reads MOAT_HOME/leaves.
	a := &worker{name: "a"}
	b := &worker{name: "b"}
	for _, k := range []*worker{a, b} {
		pub := leafKey(t, w, filepath.Join(w.home.CredsDir(), "leaf-"+k.name+".nk"))
		os.MkdirAll(filepath.Join(w.home.Dir, "leaves"), 0o700)
		if err := os.WriteFile(filepath.Join(w.home.Dir, "leaves", k.name+".pub"), []byte(pub+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	w.start("hub", nil, "busd", "--name", "hub", "--listen", testbin.Addr(hubClient), "--leaf-listen", testbin.Addr(hubLeaf), "--monitor", testbin.Addr(hubMon))
	w.daemon("policyd", "policyd", hubURL)
	w.daemon("auditd", "auditd", hubURL)
	for _, k := range []*worker{a, b} {
		port := testbin.FreePort(t)
		k.url = "nats://" + testbin.Addr(port)
		k.bus = w.start(k.name+"-busd", nil, "busd", "--name", k.name, "--listen", testbin.Addr(port), "--hub", testbin.Addr(hubLeaf),
			"--leaf-key", filepath.Join(w.home.CredsDir(), "leaf-"+k.name+".nk"))
		k.sandboxd = w.daemon(k.name+"-sandboxd", "sandboxd", k.url)
		w.daemon(k.name+"-profiled", "profiled", k.url)
	}
	testbin.Eventually(t, 30*time.Second, "both workers connected", func() error {
		if n, err := leafCount(hubMon); err != nil || n != 2 {
			return fmt.Errorf("%d leaves (%v)", n, err)
		}
		return nil
	})
	ca := w.dial(home.RoleClient, a.url)
	waitServices(t, ca, map[string]int{"profiled": 2, "policyd": 1, "sandboxd": 2, "auditd": 1})
	aID := a.id(t)

	session := wire.NewID()
	marker := filepath.Join(w.ws, "runs.log")
	run := func(c *client.Client, id string) (*wire.RunResult, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		return c.Run(ctx, &wire.RunRequest{RequestID: id, SessionID: session, Profile: "workspace-write",
			Workspace: w.ws, Cwd: w.ws, Argv: []string{"sh", "-c", "echo " + id + " >> " + marker}}, nil)
	}
	var ids []string
	for i := 0; i < 30; i++ {
		if i == 10 {
			b.bus.Kill()
			t.Logf("killed worker b's bus after %d runs on a", i)
		}
		id := wire.NewID()
		res, err := run(ca, id)
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("run %d on worker a (b's bus killed after 10): %v %+v", i, err, res)
		}
		ids = append(ids, id)
	}

	// Decided and recorded centrally, run by a's sandboxd.
	hub := w.dial(home.RoleClient, hubURL)
	testbin.Eventually(t, 30*time.Second, "every run's exit stored by the central auditd", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		page, err := hub.AuditQuery(ctx, &wire.AuditQuery{SessionID: session, Kind: "run.exit", Limit: 100})
		if err != nil {
			return err
		}
		if len(page.Events) != len(ids) {
			return fmt.Errorf("%d exits stored, want %d", len(page.Events), len(ids))
		}
		for _, e := range page.Events {
			if e.Event.Instance != aID {
				return fmt.Errorf("run %s was run by %s, not worker a's sandboxd %s", e.Event.RequestID, e.Event.Instance, aID)
			}
		}
		return nil
	})
	data, _ := os.ReadFile(marker)
	if got := lines(string(data)); len(got) != len(ids) {
		t.Fatalf("%d runs happened on worker a, want %d", len(got), len(ids))
	}

	// moat status at the hub sees the hub and the surviving worker.
	testbin.Eventually(t, 30*time.Second, "the hub's view of its leaves", func() error {
		servers, err := hub.BusServers(context.Background(), time.Second)
		if err != nil {
			return err
		}
		got := map[string][]string{}
		for _, b := range servers {
			got[b.Name+" "+b.Role] = b.Leaves
		}
		if len(got) != 2 || len(got["hub alone+hub"]) != 1 || got["hub alone+hub"][0] != "a" || got["a leaf"] == nil {
			return fmt.Errorf("servers and their leaves: %v", got)
		}
		return nil
	})

	// A request id runs once: sent again, it is refused and nothing runs.
	if _, err := run(ca, ids[0]); wire.CodeOf(err) != wire.CodeConflict {
		t.Fatalf("the same request id again: %v, want 409", err)
	}
	// No central request reaches a worker's sandboxd.
	if _, err := run(hub, wire.NewID()); wire.CodeOf(err) != wire.CodeUnavailable {
		t.Fatalf("a run asked at the hub: %v, want 503 (no sandboxd there)", err)
	}
	data, _ = os.ReadFile(marker)
	if got := lines(string(data)); len(got) != len(ids) || got[ids[0]] != 1 {
		t.Fatalf("after the refused requests: %d runs, %s ran %d times", len(got), ids[0], got[ids[0]])
	}
}
