package bus

import (
	"context"
	"log/slog"
	"time"

	"github.com/moatsec/moat/pkg/home"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ReconcileEvery is how often a clustered busd checks its streams' replicas.
const ReconcileEvery = 2 * time.Second

// ClusterReplicas is how many copies every stream keeps once a cluster has
// that many servers.
const ClusterReplicas = 3

// reconciler keeps the streams moat needs in place and answers
// moat.bus.servers (info.go), through one in-process admin connection it
// owns. Alone, busd creates the streams once at start. In a cluster it runs
// one goroutine, joined by stop: on the JetStream meta leader only, it
// creates MOAT_AUDIT, MOAT_RUNS and the anchor bucket when missing, and
// raises every stream in the account — key-value buckets included, whoever
// made them — to three replicas once three servers are up. It never lowers
// replicas: a server lost for a while does not cost the others their copies.
// A worker's leaf keeps no streams (the hub does) and only answers.
type reconciler struct {
	nc     *nats.Conn
	cancel context.CancelFunc
	done   chan struct{}
}

// startStreams makes the streams exist (alone) or starts the reconciler
// (cluster), and answers moat.bus.servers.
func startStreams(ctx context.Context, ns *server.Server, h home.Home, t Topology, bounds StreamBounds, log *slog.Logger) (*reconciler, error) {
	nc, err := adminConn(ns, h)
	if err != nil {
		return nil, err
	}
	r := &reconciler{nc: nc, done: make(chan struct{})}
	var js jetstream.JetStream
	if !t.IsLeaf() {
		if js, err = jetstream.New(nc); err == nil && !t.Clustered() {
			err = ensureStreams(ctx, js, bounds, 1)
		}
	}
	if err == nil {
		err = answerInfo(nc, ns, t, js)
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	if !t.Clustered() {
		close(r.done)
		return r, nil
	}
	rctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		defer close(r.done)
		created := false
		t := time.NewTicker(ReconcileEvery)
		defer t.Stop()
		for {
			if ns.JetStreamIsLeader() {
				want := 1
				if len(ns.JetStreamClusterPeers()) >= ClusterReplicas {
					want = ClusterReplicas
				}
				if !created {
					if err := ensureStreams(rctx, js, bounds, want); err != nil {
						log.Warn("streams not ready yet", "err", err)
					} else {
						created = true
					}
				}
				if created {
					raiseReplicas(rctx, js, want, log)
				}
			}
			select {
			case <-rctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return r, nil
}

// stop ends the reconciler and waits for it.
func (r *reconciler) stop() {
	if r == nil {
		return
	}
	if r.cancel != nil {
		r.cancel()
	}
	<-r.done
	r.nc.Close()
}

// raiseReplicas moves every stream below want replicas up to want.
func raiseReplicas(ctx context.Context, js jetstream.JetStream, want int, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, ReconcileEvery*2)
	defer cancel()
	lister := js.ListStreams(ctx)
	var low []jetstream.StreamConfig
	for info := range lister.Info() {
		if info.Config.Replicas < want {
			low = append(low, info.Config)
		}
	}
	for _, cfg := range low {
		from := cfg.Replicas
		cfg.Replicas = want
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			log.Warn("cannot raise stream replicas", "stream", cfg.Name, "from", from, "to", want, "err", err)
			continue
		}
		log.Info("stream replicas raised", "stream", cfg.Name, "from", from, "to", want)
	}
}
