//go:build linux

package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/audit"
	"github.com/moatsec/moat/pkg/bus"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/moatsec/moat/test/testbin"
)

// A cluster that shrank to one server, or a node's data directory reused:
// busd started alone on a store whose streams a cluster kept with three
// replicas refuses it, saying what to run and leaving the store as it was;
// with --leave-cluster it runs them from this copy with one replica, every
// event the copy holds kept.
func TestAloneOnAClusterStore(t *testing.T) {
	w := newWorld(t)
	s := w.cluster(3)
	s.healthy(90*time.Second, 3)
	c := w.dial(home.RoleBenchd, s.urls(0))
	pub, err := audit.NewPublisher(c.Conn(), home.RoleBenchd, "shrink-test")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := pub.Publish(context.Background(), &wire.AuditEvent{Kind: "bench.shrink"}); err != nil {
			t.Fatalf("publish in the cluster: %v", err)
		}
	}
	js := adminJS(t, w, s.urls(0))
	testbin.Eventually(t, 60*time.Second, "every copy of MOAT_AUDIT holds the 3 events", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, wire.AuditStream)
		if err != nil {
			return err
		}
		info := st.CachedInfo()
		if info.State.Msgs != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
			return fmt.Errorf("%d events, cluster %+v", info.State.Msgs, info.Cluster)
		}
		for _, r := range info.Cluster.Replicas {
			if !r.Current || r.Lag != 0 {
				return fmt.Errorf("copy on %s: current %v, lag %d", r.Name, r.Current, r.Lag)
			}
		}
		return nil
	})
	c.Close()
	for _, n := range s.nodes {
		if err := n.p.Signal(syscall.SIGTERM, 60*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	store := filepath.Join(w.home.BusDir(), s.nodes[0].name)
	before := streamMetas(t, store)

	port := testbin.FreePort(t)
	refused := w.start("refused", nil, "busd", "--listen", testbin.Addr(port), "--store", store)
	select {
	case <-refused.Done:
	case <-time.After(30 * time.Second):
		refused.Kill()
		t.Fatalf("busd alone on the cluster's store started instead of refusing it:\n%s", testbin.Tail(refused.Output(), 3000))
	}
	out, err := refused.Output(), refused.Err
	if err == nil || !strings.Contains(out, "MOAT_AUDIT (R3)") || !strings.Contains(out, "--leave-cluster") {
		t.Fatalf("busd alone on the cluster's store: %v, want a refusal naming the streams and --leave-cluster:\n%s", err, out)
	}
	if after := streamMetas(t, store); after != before {
		t.Fatalf("the refused start changed the store's stream configs")
	}

	alone := w.start("alone", nil, "busd", "--listen", testbin.Addr(port), "--store", store, "--leave-cluster")
	js = adminJS(t, w, "nats://"+testbin.Addr(port))
	testbin.Eventually(t, 60*time.Second, "every stream at R1 on the server alone", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		for _, name := range bus.StreamNames() {
			st, err := s.stream(ctx, js, name)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if st.replicas != 1 {
				return fmt.Errorf("%s: R%d", name, st.replicas)
			}
			if name == wire.AuditStream && st.msgs != 3 {
				return fmt.Errorf("%s holds %d events, want the 3 acked in the cluster", name, st.msgs)
			}
		}
		return nil
	})
	if out := alone.Output(); !strings.Contains(out, "busd leaves its cluster") || !strings.Contains(out, "MOAT_AUDIT (R3)") {
		t.Fatalf("busd --leave-cluster does not say which streams it lowered:\n%s", testbin.Tail(out, 3000))
	}
}

// streamMetas is every stream config in the store at dir, concatenated.
func streamMetas(t *testing.T, dir string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "jetstream", "*", "streams", "*", "meta.inf"))
	if len(files) == 0 {
		t.Fatalf("no stream configs under %s", dir)
	}
	var all strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(data)
	}
	return all.String()
}
