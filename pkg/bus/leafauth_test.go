package bus_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/bus"
	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

func newHome(t *testing.T) home.Home {
	t.Helper()
	dir, _ := filepath.EvalSymlinks(t.TempDir())
	h, err := home.New(filepath.Join(dir, "moat"))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Init(false); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestLeafThroughKeyAuth runs a hub and a worker's leaf: the leaf
// connection authenticates with its leaf key through busd's own key check
// (auth.go), and a client on the worker gets an answer from a service on the
// hub in its private inbox.
func TestLeafThroughKeyAuth(t *testing.T) {
	hubHome, leafHome := newHome(t), newHome(t)
	pub, err := bus.NewLeafKey(bus.LeafKeyFile(leafHome))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(bus.LeavesDir(hubHome), 0o755)
	if err := os.WriteFile(filepath.Join(bus.LeavesDir(hubHome), "w1.pub"), []byte(pub+"\n"), 0o644); err != nil {
		t.Fatal(err)
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
	leaf, err := bus.Start(context.Background(), bus.Config{Home: leafHome, Listen: "127.0.0.1:0", Logger: quiet,
		Topology: bus.Topology{Hub: []string{"127.0.0.1:" + strconv.Itoa(leafPort)}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(leaf.Close)

	hubStack := &bustest.Stack{Home: hubHome, URL: hub.ClientURL(), Server: hub}
	pd := hubStack.Client(t, home.RolePolicyd).Conn()
	if _, err := pd.Subscribe(wire.SubjectCheck, func(m *nats.Msg) { m.Respond([]byte("hub")) }); err != nil {
		t.Fatal(err)
	}
	pd.Flush()
	c, err := client.Dial(context.Background(), client.Options{URL: leaf.ClientURL(), Role: home.RoleClient}.Fill(leafHome))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		m, err := c.Conn().Request(wire.SubjectCheck, []byte("{}"), 500*time.Millisecond)
		if err == nil && string(m.Data) == "hub" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer from the hub through the leaf: %v", err)
		}
	}
}
