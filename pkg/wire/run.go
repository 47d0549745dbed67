package wire

import (
	"crypto/rand"
	"syscall"
	"time"
)

// The run protocol (docs/bus.md, "The run protocol"). A caller that sets
// HeaderAcceptInterim on its moat.sandbox.run request hears, on its own reply
// subject and nowhere else, in this order:
//
//   - heartbeats: an empty message with HeaderHeartbeat, sent 250 ms in and
//     every RunHeartbeat, whose reply subject is the run's control subject;
//   - output chunks: HeaderStream (stdout or stderr) and at most
//     RunChunkBytes of output, live as the command writes it when the
//     request set stream, else after the command ends;
//   - the RunResult, without the output bytes, with HeaderChunks saying how
//     many chunks came before it.
//
// On the control subject (publishable under the bus's allow_responses only
// by whoever received the heartbeat), the caller answers each heartbeat
// with HeaderHeartbeat "ack", passes a signal on to the command with
// HeaderSignal, and cancels the run with HeaderCancel.
// sandboxd kills the run when the caller cancels, when a heartbeat finds no
// subscriber on the reply subject (the caller's connection is gone), or when
// no ack came for RunCallerSilence.
//
// A caller without HeaderAcceptInterim gets one message, the result, with
// the output in it, cut to fit the bus's max payload.
//
// The bus's permission for sandboxd to publish on the caller's reply
// subject comes with the request and lives on the connection that received
// it: when busd restarts, or sandboxd's connection moves to another server,
// it is gone and the caller hears nothing more. So a caller that hears
// nothing for RunResumeAfter, or whose own connection was re-established,
// publishes on SubjectRunResume (no answer expected) a message whose reply
// subject is the run's reply subject, with the run's HeaderRequestID. Every
// sandboxd receives it, so the bus lets it answer there again; the one
// running that request id for that very reply subject sends a heartbeat at
// once and goes on, the others ignore it. No sandboxd publishes anywhere
// but on the reply subject of the run's own request.
const SubjectRunResume = "moat.sandbox.resume"

const (
	HeaderChunks = "Moat-Chunks" // on the result: output chunks sent before it
	HeaderCancel = "Moat-Cancel" // caller → sandboxd: stop the run; the value says why
	// HeaderSignal (caller → sandboxd, a RunSignals name) passes a signal
	// on to the command's process group, as a terminal would; sent before
	// the command starts, it cancels the run.
	HeaderSignal = "Moat-Signal"
	// HeaderDeadline (RFC 3339, on the request) is when the caller stops
	// waiting: an allowed run past sandboxd's slots waits in its queue until
	// then at most (408, nothing ran).
	HeaderDeadline = "Moat-Deadline"

	HeartbeatAck = "ack" // HeaderHeartbeat's value in the caller's answer

	// RunSignalGrace is how long a caller that passed on a signal lets the
	// command end by itself before it cancels the run (which kills it).
	RunSignalGrace = 2 * time.Second

	RunChunkBytes    = 64 << 10
	RunHeartbeat     = time.Second
	RunCallerSilence = 10 * time.Second
)

// RunResumeAfter is how long a caller hears nothing before it publishes on
// SubjectRunResume (and again every RunHeartbeat while it hears nothing).
const RunResumeAfter = 2 * RunHeartbeat

// Stream names of output chunks.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
)

// CallerRoles are the roles whose every connection has an inbox of its own,
// so that no other connection — not even one holding the same key — can read
// its answers or its runs' output. The connection claims a random inbox id
// when it connects (in CONNECT's auth_token; pkg/client does it) and busd
// lets it subscribe only under CallerInbox(role, id). A connection of these
// roles that claims none (the NATS CLI) gets the standard _INBOX. prefix.
var CallerRoles = []string{"client", "approver", "benchd"}

// CallerInbox is the inbox prefix of one caller connection.
func CallerInbox(role, id string) string { return InboxPrefix(role) + "." + id }

// InboxIDLen is the length of a caller's inbox id: 22 characters from
// [0-9A-Za-z] (NewToken), random enough that nobody guesses another's.
const InboxIDLen = 22

// ValidToken reports whether t is InboxIDLen characters from [0-9A-Za-z],
// the shape NewToken gives (a caller's inbox id, a record-ack token).
func ValidToken(t string) bool {
	if len(t) != InboxIDLen {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// NewToken returns InboxIDLen characters from [0-9A-Za-z] drawn from
// crypto/rand (~130 bits): a name nobody can guess from others seen, for
// an inbox id or a reply subject's last token. (A NUID counts up from a
// random prefix: two seen give away the next.)
func NewToken() string {
	const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	var b [InboxIDLen]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = digits[int(b[i])%len(digits)] // 256 % 62: a slight bias, ~5.95 bits a character
	}
	return string(b[:])
}

// RunSignals are the signals a caller may pass on to its run's command
// (HeaderSignal's values): what a terminal or a supervisor sends.
var RunSignals = map[string]syscall.Signal{"SIGHUP": syscall.SIGHUP, "SIGINT": syscall.SIGINT, "SIGTERM": syscall.SIGTERM}

// SignalName is sig's name in RunSignals, or "" for another signal.
func SignalName(sig syscall.Signal) string {
	for name, s := range RunSignals {
		if s == sig {
			return name
		}
	}
	return ""
}
