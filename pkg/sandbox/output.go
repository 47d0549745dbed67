package sandbox

import (
	"io"
	"sync"
)

// capped keeps at most max bytes of what is written, marks truncation, and
// never blocks the writer: past the cap, output is drained and dropped so a
// chatty command cannot stall on a full pipe.
type capped struct {
	mu        sync.Mutex
	buf       []byte
	max       int
	truncated bool
	live      io.Writer // optional copy of what is kept
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(p)
	room := c.max - len(c.buf)
	if room <= 0 {
		c.truncated = c.truncated || n > 0
		return n, nil
	}
	if len(p) > room {
		p = p[:room]
		c.truncated = true
	}
	c.buf = append(c.buf, p...)
	if c.live != nil {
		c.live.Write(p)
	}
	return n, nil
}

func (c *capped) result() ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf, c.truncated
}
