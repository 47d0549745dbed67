package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// DefaultDrain is how long busd, told to stop, waits for moat's daemons to
// drain before it shuts down: within foreman's 5 s before SIGKILL.
const DefaultDrain = 4 * time.Second

// Drain is busd's lame duck: it tells moat's daemons the bus is stopping
// (wire.SubjectBusStopping) and waits, up to timeout or ctx, until none of
// them is connected — each finishes or cancels its work, writes its
// records and answers its callers first — while the bus, JetStream
// included, still serves them. Call Close after it. It returns how many
// daemon connections were still there when it gave up.
func (s *Server) Drain(ctx context.Context, h home.Home, timeout time.Duration) (int, error) {
	keys, err := h.PublicKeys()
	if err != nil {
		return 0, err
	}
	daemons := map[string]bool{}
	for _, role := range wire.Services { // each daemon connects with the key of its name
		daemons[keys[role]] = true
	}
	left := func() int {
		cz, err := s.ns.Connz(&server.ConnzOptions{Limit: 1 << 16, Username: true})
		if err != nil {
			return -1
		}
		n := 0
		for _, c := range cz.Conns {
			if daemons[c.AuthorizedUser] {
				n++
			}
		}
		return n
	}
	if left() == 0 {
		return 0, nil
	}
	auth, err := nats.NkeyOptionFromSeed(h.Creds(home.RoleAdmin))
	if err != nil {
		return left(), fmt.Errorf("read the admin key to tell the daemons: %w", err)
	}
	nc, err := nats.Connect("", nats.InProcessServer(s.ns), auth, nats.Name("busd"))
	if err != nil {
		return left(), fmt.Errorf("connect to tell the daemons: %w", err)
	}
	defer nc.Close()
	if err := nc.Publish(wire.SubjectBusStopping, nil); err != nil {
		return left(), err
	}
	nc.Flush()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(25 * time.Millisecond)
	defer t.Stop()
	for {
		n := left()
		if n == 0 {
			return 0, nil
		}
		select {
		case <-ctx.Done():
			return n, nil
		case <-t.C:
		}
	}
}
