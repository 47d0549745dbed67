package wire

// SubjectBusServers is answered by every busd (no queue group): each says
// what it is and whom it is connected to; the caller gathers the answers
// for a while (moat status). Any moat key may ask.
const SubjectBusServers = "moat.bus.servers"

// BusServer is one busd's answer on moat.bus.servers.
type BusServer struct {
	Name          string          `json:"name"`
	Version       string          `json:"version"`
	Role          string          `json:"role"` // alone, cluster, hub (takes leaves), leaf (a worker's)
	Cluster       string          `json:"cluster,omitempty"`
	Routes        []string        `json:"routes,omitempty"` // servers it has routes to
	Leaves        []string        `json:"leaves,omitempty"` // leaf connections: the workers' servers, or a leaf's hub
	Connections   int             `json:"connections"`
	SlowConsumers int64           `json:"slow_consumers"`
	MemBytes      int64           `json:"mem_bytes"`
	UptimeS       int64           `json:"uptime_s"`
	JetStream     string          `json:"jetstream"`         // off, on, meta-leader, follower, no-leader
	Streams       []StreamReplica `json:"streams,omitempty"` // every stream's copies, from the meta leader (or a lone server)
}

// StreamReplica is how a stream's copies stand.
type StreamReplica struct {
	Name     string       `json:"name"`
	Replicas int          `json:"replicas"` // configured
	Messages uint64       `json:"messages"`
	Leader   string       `json:"leader,omitempty"`
	Peers    []StreamPeer `json:"peers,omitempty"` // the other copies
}

// StreamPeer is one follower copy of a stream.
type StreamPeer struct {
	Name    string `json:"name"`
	Current bool   `json:"current"`
	Offline bool   `json:"offline,omitempty"`
	Lag     uint64 `json:"lag"`     // operations behind the leader
	SeenMS  int64  `json:"seen_ms"` // since the leader last heard from it
}
