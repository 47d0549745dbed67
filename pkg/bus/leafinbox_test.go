package bus_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/bus"
	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// hubAndLeaves runs a hub and n worker leaves, each with its own MOAT_HOME
// (its own role keys) and its own leaf key listed on the hub.
func hubAndLeaves(t *testing.T, n int) (*bustest.Stack, []*bustest.Stack) {
	t.Helper()
	hubHome := newHome(t)
	os.MkdirAll(bus.LeavesDir(hubHome), 0o755)
	var homes []home.Home
	for i := range n {
		h := newHome(t)
		pub, err := bus.NewLeafKey(bus.LeafKeyFile(h))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bus.LeavesDir(hubHome), "w"+strconv.Itoa(i)+".pub"), []byte(pub+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		homes = append(homes, h)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	leafPort := l.Addr().(*net.TCPAddr).Port
	l.Close()
	quiet := slog.New(slog.DiscardHandler)
	hub, err := bus.Start(context.Background(), bus.Config{Home: hubHome, Listen: "127.0.0.1:0", Logger: quiet,
		Topology: bus.Topology{LeafListen: "127.0.0.1:" + strconv.Itoa(leafPort)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hub.Close)
	var leaves []*bustest.Stack
	for i, h := range homes {
		leaf, err := bus.Start(context.Background(), bus.Config{Home: h, Listen: "127.0.0.1:0", Logger: quiet,
			Topology: bus.Topology{Name: "w" + strconv.Itoa(i), Hub: []string{"127.0.0.1:" + strconv.Itoa(leafPort)}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(leaf.Close)
		leaves = append(leaves, &bustest.Stack{Home: h, URL: leaf.ClientURL(), Server: leaf})
	}
	return &bustest.Stack{Home: hubHome, URL: hub.ClientURL(), Server: hub}, leaves
}

// untilAnswered retries a request until it is answered with want: a leaf's
// subscriptions reach the hub a moment after they are made.
func untilAnswered(t *testing.T, nc *nats.Conn, subject, who, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		m, err := nc.Request(subject, []byte(who), 500*time.Millisecond)
		if err == nil && string(m.Data) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no answer %q: %v", subject, want, err)
		}
	}
}

// A worker host taken over holds its own busd, so every subscription and
// publish its leaf connection makes is the attacker's. Its leaf may read
// only replies to its own components and send replies only to requests it
// was sent: it neither reads nor forges the answers meant for callers on the
// hub or on another worker, while its own flows still work.
func TestLeafReadsAndForgesNoOtherInbox(t *testing.T) {
	hub, leaves := hubAndLeaves(t, 2)
	rogue, other := leaves[0], leaves[1]

	// Central services answer with secrets.
	pd := hub.Conn(t, home.RolePolicyd)
	pd.Subscribe(wire.SubjectCheck, func(m *nats.Msg) { m.Respond(append([]byte("secret for "), m.Data...)) })
	prof := hub.Conn(t, home.RoleProfiled)
	prof.Subscribe(wire.SubjectResolve, func(m *nats.Msg) { m.Respond(append([]byte("secret for "), m.Data...)) })
	pd.Flush()
	prof.Flush()

	// The attacker: an admin connection on its own leaf (no limit on the
	// worker's busd) listening on every inbox there is.
	spy := rogue.Conn(t, home.RoleAdmin)
	seen := make(chan string, 1024)
	for _, s := range []string{"_INBOX.>", "_INBOX_client.>", "_INBOX_approver.>", "_INBOX_benchd.>", "_INBOX_admin.>",
		"_INBOX_sandboxd.>", "_INBOX_profiled.>", "_INBOX_policyd.>", "_INBOX_auditd.>", "_INBOX_client.*.>", "_INBOX_sandboxd.*.>"} {
		if _, err := spy.Subscribe(s, func(m *nats.Msg) { seen <- m.Subject + " " + string(m.Data) }); err != nil {
			t.Fatal(err)
		}
	}
	// Its own flows work: a central answer reaches its client and its
	// sandboxd (which also says the spy's subscriptions reached the hub).
	rogueClient := rogue.Conn(t, home.RoleClient)
	untilAnswered(t, rogueClient, wire.SubjectCheck, "rogue", "secret for rogue")
	untilAnswered(t, rogue.Conn(t, home.RoleSandboxd), wire.SubjectCheck, "rogue", "secret for rogue")
	drain(seen)

	// Callers elsewhere ask: on the hub, and on the other worker.
	victims := []struct {
		name    string
		nc      *nats.Conn
		subject string
	}{
		{"hub client", hub.Conn(t, home.RoleClient), wire.SubjectCheck},
		{"hub sandboxd", hub.Conn(t, home.RoleSandboxd), wire.SubjectCheck},
		{"hub policyd", hub.Conn(t, home.RolePolicyd), wire.SubjectResolve},
		{"other worker's client", other.Conn(t, home.RoleClient), wire.SubjectCheck},
		{"other worker's sandboxd", other.Conn(t, home.RoleSandboxd), wire.SubjectCheck},
		{"other worker's approver", other.Conn(t, home.RoleApprover), wire.SubjectCheck},
	}
	for _, v := range victims {
		untilAnswered(t, v.nc, v.subject, v.name, "secret for "+v.name)
	}
	// A last answer to the rogue's own client comes after every victim's
	// answer, on the same hub connection: had any reached the spy, it came first.
	untilAnswered(t, rogueClient, wire.SubjectCheck, "rogue", "secret for rogue")
	spy.Flush()
	for _, got := range drain(seen) {
		if !strings.HasSuffix(got, "secret for rogue") {
			t.Errorf("the rogue worker read a reply meant for another: %s", got)
		}
	}

	// Forging: the spy knows a victim's inbox (the worst case) and writes
	// into it. A request of its own through the hub, answered, then a
	// flush of the victim's connection: had the forgery been let through,
	// the victim holds it by then.
	for _, v := range victims {
		t.Run("forge into "+v.name, func(t *testing.T) {
			inbox := v.nc.NewInbox()
			sub, err := v.nc.SubscribeSync(inbox)
			if err != nil {
				t.Fatal(err)
			}
			v.nc.Flush()
			spy.Publish(inbox, []byte("forged"))
			spy.Flush()
			untilAnswered(t, rogueClient, wire.SubjectCheck, "rogue", "secret for rogue")
			v.nc.Flush()
			if m, err := sub.NextMsg(10 * time.Millisecond); err == nil {
				t.Fatalf("the rogue worker wrote into the %s's inbox %s: %q", v.name, m.Subject, m.Data)
			}
		})
	}

	// What a worker must still do: answer service discovery from the hub.
	spy.Subscribe("$SRV.PING", func(m *nats.Msg) { m.Respond([]byte(`{"name":"rogue"}`)) })
	hubClient := hub.Client(t, home.RoleClient)
	deadline := time.Now().Add(15 * time.Second)
	for {
		replies, err := hubClient.Ping(context.Background(), 300*time.Millisecond)
		if slices.ContainsFunc(replies, func(p wire.PingReply) bool { return p.Name == "rogue" }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker's service does not answer the hub's ping: %v %v", replies, err)
		}
	}
}

func drain(c chan string) []string {
	var out []string
	for {
		select {
		case s := <-c:
			out = append(out, s)
		default:
			return out
		}
	}
}
