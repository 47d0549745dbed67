package client

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// RestartGrace is how long after a connection came back a no-responders
// status is taken for a service not back yet, not for one that is not
// running: after a restart of busd the daemons reconnect too, each in its
// own time. A call that meets one then keeps waiting, and sends its request
// again (resumer; a run only on its request's own no-responders status,
// which proves no sandboxd has it), within its deadline.
const RestartGrace = 10 * time.Second

// backs holds when each connection Dial made was last re-established, for
// every Client on it (FromConn's too). Dial's handlers fill it; a closed
// connection leaves it.
var backs sync.Map // *nats.Conn → time.Time

func markBack(nc *nats.Conn) { backs.Store(nc, time.Now()) }

func forgetBack(nc *nats.Conn) { backs.Delete(nc) }

// cameBack says whether nc was re-established within RestartGrace.
func cameBack(nc *nats.Conn) bool {
	v, ok := backs.Load(nc)
	return ok && time.Since(v.(time.Time)) < RestartGrace
}
