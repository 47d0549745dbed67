package sandboxd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ClaimWait bounds how long claiming a request id may take (a cluster
// electing a new stream leader answers within a few seconds).
const ClaimWait = 10 * time.Second

// claim makes sure a request id runs at most once, across every sandboxd on
// the bus and across restarts: before a command starts, sandboxd stores a
// claim for its request id in the MOAT_RUNS stream (replicated like the
// audit stream), on the subject moat.claim.run.<sha256 of the id>, expecting
// that subject to be empty. JetStream refuses the store when another claim
// is there, and the run is refused with 409: a client that retries a request
// whose answer was lost learns that it ran, and never runs it twice.
//
// The claim's Nats-Msg-Id is unique to this attempt, so a claim whose ack
// was lost (a server failing over) and is sent again is acked as a
// duplicate of our own, not refused as another's. Claims expire with the
// stream's MaxAge (a day). No claim, no run: a stream that does not answer
// is a 503 and nothing ran.
func (d *Daemon) claim(ctx context.Context, requestID string) error {
	return d.claimAttempt(ctx, requestID, wire.NewID())
}

// claimAttempt stores the claim of one attempt; sending it again with the
// same attempt (its ack was lost) succeeds, another attempt gets 409.
func (d *Daemon) claimAttempt(ctx context.Context, requestID, attempt string) error {
	js, err := jetstream.New(d.nc)
	if err != nil {
		return wire.Errorf(wire.CodeUnavailable, "cannot claim request %s: %v: nothing ran", requestID, err)
	}
	sum := sha256.Sum256([]byte(requestID))
	key := hex.EncodeToString(sum[:16])
	body, _ := json.Marshal(map[string]any{"request_id": requestID, "instance": d.ID(), "attempt": attempt, "at": time.Now().UTC()})
	msg := nats.NewMsg(wire.SubjectRunClaim + "." + key)
	msg.Data = body
	msg.Header.Set(wire.HeaderRequestID, requestID)
	ctx, cancel := context.WithTimeout(ctx, ClaimWait)
	defer cancel()
	for {
		actx, acancel := context.WithTimeout(ctx, 2*time.Second)
		_, err = js.PublishMsg(actx, msg, jetstream.WithMsgID(key+"-"+attempt),
			jetstream.WithExpectStream(wire.RunsStream), jetstream.WithExpectLastSequencePerSubject(0))
		acancel()
		var apiErr *jetstream.APIError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant):
			// nats-server checks the expected sequence before de-duplicating
			// by Nats-Msg-Id: a resend of our own stored claim lands here.
			if ours, lerr := ownClaim(ctx, js, msg.Subject, attempt); lerr == nil && ours {
				return nil
			}
			return wire.Errorf(wire.CodeConflict, "request %s was already run (a request id runs once): not run again; "+
				"its record is in the audit (moat audit query --request %s); send a new request id to run it again", requestID, requestID)
		case errors.As(err, &apiErr):
			return wire.Errorf(wire.CodeUnavailable, "cannot claim request %s in %s (%v): nothing ran", requestID, wire.RunsStream, err)
		}
		select {
		case <-ctx.Done():
			return wire.Errorf(wire.CodeUnavailable, "cannot claim request %s in %s (%v): nothing ran; check busd (moat status)", requestID, wire.RunsStream, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ownClaim reports whether the claim stored on subject is the one of attempt.
func ownClaim(ctx context.Context, js jetstream.JetStream, subject, attempt string) (bool, error) {
	st, err := js.Stream(ctx, wire.RunsStream)
	if err != nil {
		return false, err
	}
	m, err := st.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		return false, err
	}
	var c struct {
		Attempt string `json:"attempt"`
	}
	if err := json.Unmarshal(m.Data, &c); err != nil {
		return false, err
	}
	return c.Attempt == attempt, nil
}
