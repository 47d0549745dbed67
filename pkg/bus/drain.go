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
// included, still serves them. The daemons are told one at a time in
// wire.StopOrder, each once the one before has left, so a daemon finishing
// its last requests still reaches the services it calls; one that lingers
// holds the rest back at most its share of timeout (the later ones keep
// timeout/8 each). Call Close after it. It returns how many daemon
// connections were still there when it gave up.
func (s *Server) Drain(ctx context.Context, h home.Home, timeout time.Duration) (int, error) {
	keys, err := h.PublicKeys()
	if err != nil {
		return 0, err
	}
	roleOf := map[string]string{}        // public key → daemon
	for _, role := range wire.Services { // each daemon connects with the key of its name
		roleOf[keys[role]] = role
	}
	left := func() map[string]int {
		cz, err := s.ns.Connz(&server.ConnzOptions{Limit: 1 << 16, Username: true})
		if err != nil {
			return map[string]int{"": 1} // unknown: not gone
		}
		n := map[string]int{}
		for _, c := range cz.Conns {
			if role, ok := roleOf[c.AuthorizedUser]; ok {
				n[role]++
			}
		}
		return n
	}
	total := func(n map[string]int) (t int) {
		for _, v := range n {
			t += v
		}
		return t
	}
	if total(left()) == 0 {
		return 0, nil
	}
	auth, err := nats.NkeyOptionFromSeed(h.Creds(home.RoleAdmin))
	if err != nil {
		return total(left()), fmt.Errorf("read the admin key to tell the daemons: %w", err)
	}
	nc, err := nats.Connect("", nats.InProcessServer(s.ns), auth, nats.Name("busd"))
	if err != nil {
		return total(left()), fmt.Errorf("connect to tell the daemons: %w", err)
	}
	defer nc.Close()
	end := time.Now().Add(timeout)
	ctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	t := time.NewTicker(25 * time.Millisecond)
	defer t.Stop()
	for i, role := range wire.StopOrder {
		if err := nc.Publish(wire.SubjectBusStopping, []byte(role)); err != nil {
			return total(left()), err
		}
		nc.Flush()
		// The daemons after this one keep a share of the time.
		layer, cancelLayer := context.WithDeadline(ctx, end.Add(-time.Duration(len(wire.StopOrder)-1-i)*timeout/8))
		for left()[role] > 0 && layer.Err() == nil {
			select {
			case <-layer.Done():
			case <-t.C:
			}
		}
		cancelLayer()
	}
	for {
		n := total(left())
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
