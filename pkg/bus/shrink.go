package bus

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// A store a cluster left. JetStream keeps a clustered stream's config in
// its store with the stream's replicas, and the last writes it acked in the
// cluster's log beside it. A server started alone on such a store (a
// cluster that shrank to one, a node's data directory reused) cannot load
// those streams (nats-server: "replicas > 1 not supported in non-clustered
// mode"); busd would then make them again with one replica from whatever
// this copy holds, silently losing any event the cluster acked that this
// copy had not applied. So busd alone refuses such a store unless told it
// leaves its cluster for good (Topology.LeaveCluster): then it runs the
// streams from this copy with one replica and says so, stream by stream.

// clusterStreams lists the streams in the JetStream store at dir whose
// config asks for more than one replica, as "NAME (R3)".
func clusterStreams(dir string) ([]string, error) {
	metas, err := filepath.Glob(filepath.Join(dir, "jetstream", "*", "streams", "*", "meta.inf"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, file := range metas {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read the store's stream config: %w", err)
		}
		var cfg struct {
			Name     string `json:"name"`
			Replicas int    `json:"num_replicas"`
		}
		if json.Unmarshal(data, &cfg) == nil && cfg.Replicas > 1 {
			out = append(out, fmt.Sprintf("%s (R%d)", cfg.Name, cfg.Replicas))
		}
	}
	slices.Sort(out)
	return out, nil
}

// checkAloneStore refuses to run alone on a store a cluster left, unless t
// leaves the cluster; then it logs what it takes over.
func checkAloneStore(dir string, t Topology, log *slog.Logger) error {
	if t.Clustered() || t.IsLeaf() {
		return nil
	}
	streams, err := clusterStreams(dir)
	if err != nil || len(streams) == 0 {
		return err
	}
	if !t.LeaveCluster {
		return fmt.Errorf("the store %s holds streams a cluster kept with several copies: %s; "+
			"alone, busd would run them from this copy only and could lose events the cluster acked. "+
			"Start this server in its cluster again (its --cluster, --cluster-listen and --routes), "+
			"or, if that cluster is gone for good, start it once with --leave-cluster to run these streams here with one replica; "+
			"or point --store at an empty directory", dir, strings.Join(streams, ", "))
	}
	log.Warn("busd leaves its cluster: streams lowered to one replica, from this copy", "store", dir, "streams", strings.Join(streams, ", "))
	return nil
}
