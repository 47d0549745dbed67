package client

import (
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// OnBusStopping calls stop, once, when busd says it is stopping
// (wire.SubjectBusStopping): a daemon then stops as on SIGTERM — finishing
// or cancelling its work, recording it and answering its callers — while
// busd waits for it.
func (c *Client) OnBusStopping(stop func()) error {
	_, err := c.nc.Subscribe(wire.SubjectBusStopping, func(*nats.Msg) { stop() })
	if err != nil {
		return err
	}
	return c.nc.Flush()
}
