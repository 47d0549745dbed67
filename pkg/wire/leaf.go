package wire

import "strings"

// LeafClusterPrefix starts the NATS cluster name of a worker host's busd (a
// leaf of the central bus): LeafClusterPrefix + the leaf's public nkey. The
// key is the worker's inbox tag: the hub lets that leaf receive replies only
// under inboxes that carry it (see LeafInbox), so one worker host never
// reads, nor writes into, the replies meant for a caller elsewhere.
const LeafClusterPrefix = "moat-leaf-"

// LeafCluster is the cluster name of the worker host whose leaf key is pub.
func LeafCluster(pub string) string { return LeafClusterPrefix + pub }

// LeafTag is the inbox tag of the worker host whose busd's cluster is named
// cluster (what a client reads from the server it connected to), and false
// on any other server.
func LeafTag(cluster string) (string, bool) {
	tag, ok := strings.CutPrefix(cluster, LeafClusterPrefix)
	return tag, ok && tag != ""
}

// LeafInbox is the inbox prefix a connection uses on a worker host: its
// usual one (InboxPrefix, or CallerInbox for a caller) with the worker's tag
// as one more token.
func LeafInbox(prefix, tag string) string { return prefix + "." + tag }

// OpenInboxToken marks an inbox opened for answers from every server: the
// one service discovery ($SRV.PING) and moat status (moat.bus.servers)
// gather answers in. A worker host may write into such an inbox, so that
// its services and its busd are seen from the hub, and into no other; it
// is not a token of any other inbox (nats.go's tokens are [0-9A-Za-z]).
const OpenInboxToken = "_open"

// OpenInbox turns inbox (one nats.go's NewInbox made) into an open one.
func OpenInbox(inbox string) string {
	i := strings.LastIndexByte(inbox, '.')
	return inbox[:i] + "." + OpenInboxToken + inbox[i:]
}
