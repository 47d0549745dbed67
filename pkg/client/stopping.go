package client

import (
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// OnBusStopping calls stop when busd says this daemon is to stop
// (wire.SubjectBusStopping with the connection's role, or with no body:
// every daemon): a daemon then stops as on SIGTERM — finishing or
// cancelling its work, recording it and answering its callers — while busd
// waits for it. stop may be called more than once.
func (c *Client) OnBusStopping(stop func()) error {
	_, err := c.nc.Subscribe(wire.SubjectBusStopping, func(m *nats.Msg) {
		if len(m.Data) == 0 || string(m.Data) == c.role {
			stop()
		}
	})
	if err != nil {
		return err
	}
	return c.nc.Flush()
}
