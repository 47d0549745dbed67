package client

import (
	"context"
	"time"

	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// RunSilence is how long Run waits without a heartbeat before deciding
// sandboxd is gone.
const RunSilence = 15 * time.Second

// Run asks sandboxd to resolve, check and run a command, and waits for the
// result; output, when set and req.Stream is true, receives live output as
// it comes ("stdout" or "stderr"). A denial is a result with a deny
// decision, not an error; errors are *wire.Error (503 no sandboxd, 500 the
// sandbox refused).
func (c *Client) Run(ctx context.Context, req *wire.RunRequest, output func(stream string, data []byte)) (*wire.RunResult, error) {
	if req.RequestID == "" {
		req.RequestID = wire.NewID()
	}
	body, err := wire.Encode(wire.Msgpack, req)
	if err != nil {
		return nil, err
	}
	var outCh chan *nats.Msg
	if req.Stream && output != nil {
		outCh = make(chan *nats.Msg, 1024)
		sub, err := c.nc.ChanSubscribe(wire.RunOutputSubject(req.RequestID), outCh)
		if err != nil {
			return nil, err
		}
		defer sub.Unsubscribe()
	}
	reply, msgs, done, err := c.replies()
	if err != nil {
		return nil, err
	}
	defer done()
	msg := nats.NewMsg(wire.SubjectRun)
	msg.Reply, msg.Data = reply, body
	msg.Header.Set(wire.HeaderContentType, wire.ContentMsgpack)
	msg.Header.Set(wire.HeaderRequestID, req.RequestID)
	msg.Header.Set(wire.HeaderAcceptInterim, "1")
	if req.SessionID != "" {
		msg.Header.Set(wire.HeaderSessionID, req.SessionID)
	}
	if err := c.nc.PublishMsg(msg); err != nil {
		return nil, wire.Errorf(wire.CodeUnavailable, "cannot reach sandboxd: %v", err)
	}
	silence := time.NewTimer(RunSilence)
	defer silence.Stop()
	for {
		select {
		case m := <-outCh:
			output(m.Header.Get(wire.HeaderStream), m.Data)
		case m := <-msgs:
			if m.Header.Get("Status") == "503" {
				return nil, wire.Errorf(wire.CodeUnavailable, "no sandboxd is running: start it (moat status shows what is missing)")
			}
			if (m.Header.Get(wire.HeaderHeartbeat) != "" || m.Header.Get(wire.HeaderApprovalID) != "") && len(m.Data) == 0 {
				silence.Reset(RunSilence)
				continue
			}
			if code := m.Header.Get(wire.HeaderErrorCode); code != "" {
				return nil, &wire.Error{Code: wire.ParseCode(code), Message: m.Header.Get(wire.HeaderError)}
			}
			var res wire.RunResult
			if err := wire.Decode(wire.DetectFormat(m.Header.Get(wire.HeaderContentType), m.Data), m.Data, &res); err != nil {
				return nil, wire.Errorf(wire.CodeInternal, "garbled answer from sandboxd: %v", err)
			}
			for len(outCh) > 0 { // output sent before the answer
				o := <-outCh
				output(o.Header.Get(wire.HeaderStream), o.Data)
			}
			return &res, nil
		case <-silence.C:
			return nil, wire.Errorf(wire.CodeUnavailable, "sandboxd stopped answering: its runs were killed with it; the audit trail says how far it got")
		case <-ctx.Done():
			return nil, wire.Errorf(wire.CodeTimeout, "gave up waiting for the run: %v", ctx.Err())
		}
	}
}
