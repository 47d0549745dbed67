package sandboxd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/moatsec/moat/pkg/audit"
	"github.com/moatsec/moat/pkg/truncate"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ClaimWait bounds how long claiming a request id may take (a cluster
// electing a new stream leader answers within a few seconds).
const ClaimWait = 10 * time.Second

// The states of a claim (claimRecord.State).
const (
	claimRunning = "running" // its holder is running it (or waiting for a slot)
	// claimClosing: its holder was lost; the sweeper that took it over is
	// about to fix its run.failed (ending). Nothing is published while a
	// claim is closing: should that sweeper be lost too, the next one
	// stamps a run.failed of its own.
	claimClosing = "closing"
	// claimEnding: its end is fixed (End) and being put on record; should
	// its holder be lost now, another puts that same event on record.
	claimEnding = "ending"
	claimDone   = "done" // its end is on record
	// claimReleased: nothing ran (its slot wait ended, its decision could
	// not be recorded): the request id may be claimed again.
	claimReleased = "released"
)

// claimRecord is a claim's body in MOAT_RUNS (JSON). A claim written before
// claims had a state has none, and is never closed as lost.
type claimRecord struct {
	RequestID string `json:"request_id"`
	SessionID string `json:"session_id,omitempty"`
	Profile   string `json:"profile,omitempty"`
	// Argv and Cwd, for the run.failed of a lost holder: sanitized and
	// bounded as in the audit (onRecord).
	Argv     []string  `json:"argv,omitempty"`
	Cwd      string    `json:"cwd,omitempty"`
	Instance string    `json:"instance"` // the sandboxd holding it
	Attempt  string    `json:"attempt"`
	At       time.Time `json:"at"`
	State    string    `json:"state,omitempty"`
	Lost     string    `json:"lost,omitempty"`    // the instance that was lost, once closing
	Outcome  string    `json:"outcome,omitempty"` // once ending or done: how it ended
	// End is the run's end record (msgpack), stamped before it is
	// published: while ending, a sweeper publishes it as it is.
	End []byte `json:"end,omitempty"`
	// Release, while ending: nothing ran, so once End is on record the
	// claim is released (the id may be sent again), not done.
	Release bool `json:"release,omitempty"`
}

// claim is a claim this sandboxd holds: the message on subject at seq.
type claim struct {
	d       *Daemon
	subject string
	seq     uint64
	rec     claimRecord
}

// claimKey is the claim subject's last token for a request id.
func claimKey(requestID string) string {
	sum := sha256.Sum256([]byte(requestID))
	return hex.EncodeToString(sum[:16])
}

// onRecord is argv and cwd as an audit record holds them: sanitized (no
// secret, no home directory, no user name reaches MOAT_RUNS' disk either)
// and bounded.
func (d *Daemon) onRecord(argv []string, cwd string) ([]string, string) {
	ev := &wire.AuditEvent{Argv: argv, Cwd: cwd}
	if d.cfg.Sanitizer != nil {
		d.cfg.Sanitizer.Event(ev)
	} else {
		audit.Bound(ev)
	}
	return ev.Argv, ev.Cwd
}

// claimAt makes sure a request id runs at most once, across every sandboxd on
// the bus and across restarts: once a run is allowed and before its decision
// is recorded, sandboxd stores a claim for its request id in the MOAT_RUNS
// stream (replicated like the audit stream), on the subject
// moat.claim.run.<sha256 of the id>, expecting that subject to be empty.
// JetStream refuses the store when another claim is there, and the run is
// refused with 409: a client that retries a request whose answer was lost
// learns that it ran, and never runs it twice.
//
// The claim names its holder (this instance) and is marked done, at the
// sequence it was stored at, once the run's end is on record (ends.go). A
// claim still running when its holder is lost is closed by another sandboxd
// with a run.failed record (lost.go), so no allowed run stays open.
//
// The claim's Nats-Msg-Id is unique to this attempt, so a claim whose ack
// was lost (a server failing over) and is sent again is acked as a
// duplicate of our own, not refused as another's. Claims expire with the
// stream's MaxAge (a day). No claim, no run: a stream that does not answer
// is a 503 and nothing ran.
//
// cwd is the run's resolved working directory; attempt names this attempt
// (sent again with the same attempt after a lost ack it succeeds, another
// attempt gets 409).
func (d *Daemon) claimAt(ctx context.Context, rr *wire.RunRequest, profile, cwd, attempt string) (*claim, error) {
	requestID := rr.RequestID
	ctx, cancel := context.WithTimeout(ctx, ClaimWait)
	defer cancel()
	// A claim is only taken under a liveness record, so that it is closed if
	// this instance is lost (lost.go).
	if err := d.live.ensure(ctx); err != nil {
		return nil, wire.Errorf(wire.CodeUnavailable, "cannot claim request %s: %v: nothing ran; check busd (moat status)", requestID, err)
	}
	key := claimKey(requestID)
	c := &claim{d: d, subject: wire.SubjectRunClaim + "." + key, rec: claimRecord{RequestID: requestID, SessionID: rr.SessionID,
		Profile: profile, Instance: d.ID(), Attempt: attempt, At: time.Now().UTC(), State: claimRunning}}
	c.rec.Argv, c.rec.Cwd = d.onRecord(rr.Argv, cwd)
	body, _ := json.Marshal(&c.rec)
	msg := nats.NewMsg(c.subject)
	msg.Data = body
	msg.Header.Set(wire.HeaderRequestID, requestID)
	var expect uint64 // the subject is empty, or holds a released claim at expect
	for {
		actx, acancel := context.WithTimeout(ctx, 2*time.Second)
		ack, err := d.js.PublishMsg(actx, msg, jetstream.WithMsgID(key+"-"+attempt),
			jetstream.WithExpectStream(wire.RunsStream), jetstream.WithExpectLastSequencePerSubject(expect))
		acancel()
		var apiErr *jetstream.APIError
		switch {
		case err == nil:
			c.seq = ack.Sequence
			d.held.Add(1)
			return c, nil
		case wrongSeq(err):
			// nats-server checks the expected sequence before de-duplicating
			// by Nats-Msg-Id: a resend of our own stored claim lands here.
			seq, there, lerr := lastClaim(ctx, d.js, c.subject)
			switch {
			case lerr == nil && there.Attempt == attempt:
				c.seq = seq
				d.held.Add(1)
				return c, nil
			case lerr == nil && there.State == claimReleased && seq != expect:
				expect = seq // nothing ran under it: claim it in its place
				continue
			}
			how := ""
			switch {
			case lerr == nil && (there.State == claimDone || there.State == claimEnding) && there.Outcome != "":
				how = " (" + truncate.String(there.Outcome, 300) + ")"
			case lerr == nil && there.State == claimRunning:
				how = " (it is running, on sandboxd " + there.Instance + ")"
			}
			return nil, wire.Errorf(wire.CodeConflict, "request %s was already run%s (a request id runs once): not run again; "+
				"its record is in the audit (moat audit query --request %s); send a new request id to run it again", requestID, how, requestID)
		case runsFull(err):
			return nil, wire.Errorf(wire.CodeUnavailable, "cannot claim request %s: %s is full (its bound, busd --runs-max-bytes; claims "+
				"are kept a day): nothing ran; retry later, or raise the bound", requestID, wire.RunsStream)
		case errors.As(err, &apiErr):
			return nil, wire.Errorf(wire.CodeUnavailable, "cannot claim request %s in %s (%v): nothing ran", requestID, wire.RunsStream, err)
		}
		select {
		case <-ctx.Done():
			return nil, wire.Errorf(wire.CodeUnavailable, "cannot claim request %s in %s (%v): nothing ran; check busd (moat status)", requestID, wire.RunsStream, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// wrongSeq reports whether err is JetStream refusing a store because the
// subject's last sequence is not the one expected.
func wrongSeq(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// lastClaim is the claim stored on subject, and its sequence.
func lastClaim(ctx context.Context, js jetstream.JetStream, subject string) (uint64, *claimRecord, error) {
	st, err := js.Stream(ctx, wire.RunsStream)
	if err != nil {
		return 0, nil, err
	}
	m, err := st.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		return 0, nil, err
	}
	var c claimRecord
	if err := json.Unmarshal(m.Data, &c); err != nil {
		return 0, nil, err
	}
	return m.Sequence, &c, nil
}

// fix fixes the run's end in its claim before the end is published: ev is
// stamped, so whoever puts this claim's end on record — its holder, or a
// sweeper once the holder is lost — publishes the very same event (one
// record, whichever copy gets there), never a run.failed beside it.
// release says the claim is to be released, not done, once ev is on
// record (nothing ran). errChanged: another sandboxd took the claim over.
func (c *claim) fix(ctx context.Context, ev *wire.AuditEvent, outcome string, release bool) error {
	end, err := wire.Encode(wire.Msgpack, ev)
	if err != nil {
		return fmt.Errorf("encode the run's end: %w", err)
	}
	rec := c.rec
	rec.State, rec.Outcome, rec.End, rec.Release = claimEnding, outcome, end, release
	ctx, cancel := context.WithTimeout(ctx, ClaimWait)
	defer cancel()
	seq, err := c.d.update(ctx, c.subject, c.seq, &rec)
	if errors.Is(err, errChanged) && c.resync(ctx) {
		seq, err = c.d.update(ctx, c.subject, c.seq, &rec)
	}
	if err != nil {
		return err
	}
	c.rec, c.seq = rec, seq
	return nil
}

// mark marks the claim state (done or released) with outcome, once its
// end is on record, and stops counting it held. errChanged: another
// sandboxd took it over (it is not held here any more either).
func (c *claim) mark(ctx context.Context, state, outcome string) error {
	// A claim that is done or released keeps only what a 409 says: its
	// argv, cwd and end are on record elsewhere (or nothing ran), and the
	// stream keeps each claim a day.
	rec := c.rec
	rec.State, rec.Outcome, rec.End, rec.Release, rec.Argv, rec.Cwd = state, outcome, nil, false, nil, ""
	ctx, cancel := context.WithTimeout(ctx, ClaimWait)
	defer cancel()
	seq, err := c.d.update(ctx, c.subject, c.seq, &rec)
	if errors.Is(err, errChanged) && c.resync(ctx) {
		seq, err = c.d.update(ctx, c.subject, c.seq, &rec)
	}
	switch {
	case errors.Is(err, errChanged):
		c.d.held.Add(-1)
		return err
	case err != nil:
		return err
	}
	c.rec, c.seq = rec, seq
	c.d.held.Add(-1)
	return nil
}

// resync reports whether the claim, found at another sequence than c.seq,
// is still held by this sandboxd — an update of ours whose ack was lost
// after the update itself gave up — and takes that sequence.
func (c *claim) resync(ctx context.Context) bool {
	seq, there, err := lastClaim(ctx, c.d.js, c.subject)
	if err != nil || there.Instance != c.d.ID() || there.Attempt != c.rec.Attempt || seq == c.seq {
		return false
	}
	c.seq = seq
	return true
}

// update replaces the claim or liveness record on subject, expecting it at
// seq (compare and swap), sending it again while the stream does not answer.
// It returns the record's new sequence.
func (d *Daemon) update(ctx context.Context, subject string, seq uint64, rec any) (uint64, error) {
	body, _ := json.Marshal(rec)
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ack, err := d.js.Publish(actx, subject, body, jetstream.WithExpectStream(wire.RunsStream), jetstream.WithExpectLastSequencePerSubject(seq))
		cancel()
		var apiErr *jetstream.APIError
		switch {
		case err == nil:
			return ack.Sequence, nil
		case wrongSeq(err):
			// Our own update whose ack was lost lands here too; reading it
			// back tells them apart.
			got, same, err := d.readBack(ctx, subject, body)
			switch {
			case err != nil:
				return 0, fmt.Errorf("update %s: %w; check busd (moat status)", subject, err)
			case same:
				return got, nil
			}
			return 0, fmt.Errorf("%s at sequence %d: %w", subject, seq, errChanged)
		case errors.As(err, &apiErr) && (apiErr.Code != 503 || runsFull(err)):
			return 0, fmt.Errorf("update %s: %w", subject, err)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("update %s: %w; check busd (moat status)", subject, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// runsFull reports whether err is MOAT_RUNS refusing a message because it
// is full (its MaxBytes): not worth sending again at once.
func runsFull(err error) bool {
	return strings.Contains(err.Error(), "maximum bytes") || strings.Contains(err.Error(), "maximum messages")
}

// errChanged is update's error when the record is no longer at the
// sequence expected: another sandboxd updated it.
var errChanged = errors.New("changed meanwhile (another sandboxd updated it)")

// readBack reports whether subject's last message is body, and its
// sequence, reading it again while the stream does not answer (up to ctx):
// a read that failed says nothing about who wrote last.
func (d *Daemon) readBack(ctx context.Context, subject string, body []byte) (uint64, bool, error) {
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		m, err := lastMsg(rctx, d.js, subject)
		cancel()
		if err == nil {
			return m.Sequence, string(m.Data) == string(body), nil
		}
		select {
		case <-ctx.Done():
			return 0, false, fmt.Errorf("read %s back: %w", subject, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// lastMsg is subject's last message in MOAT_RUNS.
func lastMsg(ctx context.Context, js jetstream.JetStream, subject string) (*jetstream.RawStreamMsg, error) {
	st, err := js.Stream(ctx, wire.RunsStream)
	if err != nil {
		return nil, err
	}
	return st.GetLastMsgForSubject(ctx, subject)
}
