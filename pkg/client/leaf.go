package client

import (
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// onLeaf adds the worker's inbox tag to nc's inbox prefix when nc is
// connected to a worker host's busd (its cluster named by
// wire.LeafCluster): the hub sends that worker replies only under inboxes
// carrying its tag (wire.LeafInbox). The tag is known only once connected,
// so the prefix is set here, before nc makes any inbox: nats.go reads
// Opts.InboxPrefix only when it makes one, and nothing else uses nc yet.
func onLeaf(nc *nats.Conn) {
	if tag, ok := wire.LeafTag(nc.ConnectedClusterName()); ok && nc.Opts.InboxPrefix != "" {
		nc.Opts.InboxPrefix = wire.LeafInbox(nc.Opts.InboxPrefix, tag)
	}
}
