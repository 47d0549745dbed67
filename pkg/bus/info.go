package bus

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// answerInfo makes this server answer moat.bus.servers with [describe].
// The subscription lives on the reconciler's connection and ends with it.
func answerInfo(nc *nats.Conn, ns *server.Server, t Topology, js jetstream.JetStream) error {
	_, err := nc.Subscribe(wire.SubjectBusServers, func(m *nats.Msg) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		body, err := json.Marshal(describe(ctx, ns, t, js))
		if err == nil {
			m.Respond(body)
		}
	})
	if err != nil {
		return err
	}
	return nc.Flush()
}

// describe is what this server knows of itself: its routes and leaves, its
// JetStream role and, on the meta leader (or alone), every stream's copies.
func describe(ctx context.Context, ns *server.Server, t Topology, js jetstream.JetStream) *wire.BusServer {
	b := &wire.BusServer{Name: ns.Name(), Cluster: t.Cluster, Role: "alone"}
	switch {
	case t.IsLeaf():
		b.Role = "leaf"
	case t.Clustered():
		b.Role = "cluster"
	}
	if t.LeafListen != "" {
		b.Role += "+hub"
	}
	if v, err := ns.Varz(nil); err == nil {
		b.Version, b.Connections, b.SlowConsumers, b.MemBytes = v.Version, v.Connections, v.SlowConsumers, v.Mem
		b.UptimeS = int64(time.Since(v.Start).Seconds())
	}
	if rz, err := ns.Routez(nil); err == nil {
		for _, r := range rz.Routes {
			if !slices.Contains(b.Routes, r.RemoteName) {
				b.Routes = append(b.Routes, r.RemoteName)
			}
		}
		slices.Sort(b.Routes)
	}
	if lz, err := ns.Leafz(nil); err == nil {
		for _, l := range lz.Leafs {
			b.Leaves = append(b.Leaves, l.Name)
		}
		slices.Sort(b.Leaves)
	}
	switch {
	case !ns.JetStreamEnabled():
		b.JetStream = "off"
	case !ns.JetStreamIsClustered():
		b.JetStream = "on"
	case ns.JetStreamIsLeader():
		b.JetStream = "meta-leader"
	case ns.JetStreamIsCurrent():
		b.JetStream = "follower"
	default:
		b.JetStream = "no-leader"
	}
	if js != nil && (b.JetStream == "on" || b.JetStream == "meta-leader") {
		b.Streams = streams(ctx, js)
	}
	return b
}

func streams(ctx context.Context, js jetstream.JetStream) []wire.StreamReplica {
	var out []wire.StreamReplica
	lister := js.ListStreams(ctx)
	for info := range lister.Info() {
		s := wire.StreamReplica{Name: info.Config.Name, Replicas: info.Config.Replicas, Messages: info.State.Msgs}
		if c := info.Cluster; c != nil {
			s.Leader = c.Leader
			for _, p := range c.Replicas {
				s.Peers = append(s.Peers, wire.StreamPeer{Name: p.Name, Current: p.Current, Offline: p.Offline,
					Lag: p.Lag, SeenMS: p.Active.Milliseconds()})
			}
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b wire.StreamReplica) int { return strings.Compare(a.Name, b.Name) })
	return out
}
