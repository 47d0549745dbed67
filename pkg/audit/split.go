package audit

import (
	"bytes"
	"fmt"

	"github.com/moatsec/moat/pkg/wire"
	"github.com/vmihailenco/msgpack/v5"
)

// SplitBatch cuts a batch message's body (a msgpack array of events, see
// batch.go) into its events' bodies, which alias body. Bounds come before
// any allocation: the body at most MaxBatchBytes (and its array header),
// every length it declares present, at most MaxBatchEvents elements.
func SplitBatch(body []byte) ([][]byte, error) {
	if len(body) > MaxBatchBytes+batchHeader {
		return nil, fmt.Errorf("batch of %d bytes; at most %d", len(body), MaxBatchBytes+batchHeader)
	}
	if err := wire.CheckMsgpack(body); err != nil {
		return nil, err
	}
	r := bytes.NewReader(body)
	dec := msgpack.NewDecoder(r)
	n, err := dec.DecodeArrayLen()
	switch {
	case err != nil:
		return nil, fmt.Errorf("not an array of events: %w", err)
	case n < 1 || n > MaxBatchEvents:
		return nil, fmt.Errorf("batch of %d events; want 1 to %d", n, MaxBatchEvents)
	}
	out := make([][]byte, 0, n)
	for range n {
		start := len(body) - r.Len()
		if err := dec.Skip(); err != nil {
			return nil, fmt.Errorf("event %d: %w", len(out), err)
		}
		out = append(out, body[start:len(body)-r.Len()])
	}
	return out, nil
}
