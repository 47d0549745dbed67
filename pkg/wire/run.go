package wire

import "time"

// The run protocol (docs/bus.md, "The run protocol"). A caller that sets
// HeaderAcceptInterim on its moat.sandbox.run request hears, on its own reply
// subject and nowhere else, in this order:
//
//   - heartbeats: an empty message with HeaderHeartbeat, sent at once and
//     every RunHeartbeat, whose reply subject is the run's control subject;
//   - output chunks: HeaderStream (stdout or stderr) and at most
//     RunChunkBytes of output, live as the command writes it when the
//     request set stream, else after the command ends;
//   - the RunResult, without the output bytes, with HeaderChunks saying how
//     many chunks came before it.
//
// On the control subject (publishable under the bus's allow_responses only
// by whoever received the heartbeat), the caller answers each heartbeat
// with HeaderHeartbeat "ack", and cancels the run with HeaderCancel.
// sandboxd kills the run when the caller cancels, when a heartbeat finds no
// subscriber on the reply subject (the caller's connection is gone), or when
// no ack came for RunCallerSilence.
//
// A caller without HeaderAcceptInterim gets one message, the result, with
// the output in it, cut to fit the bus's max payload.
const (
	HeaderChunks = "Moat-Chunks" // on the result: output chunks sent before it
	HeaderCancel = "Moat-Cancel" // caller → sandboxd: stop the run; the value says why

	HeartbeatAck = "ack" // HeaderHeartbeat's value in the caller's answer

	RunChunkBytes    = 64 << 10
	RunHeartbeat     = time.Second
	RunCallerSilence = 10 * time.Second
)

// Stream names of output chunks.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
)
