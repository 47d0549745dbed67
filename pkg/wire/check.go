package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// SubjectApprovals asks every policyd instance for the approvals it waits on.
const SubjectApprovals = "moat.policy.approvals"

// SubjectCheckResume is where a check's caller says again where it listens
// (docs/bus.md, "A restart of the bus"). The bus's permission for policyd to
// answer on the caller's reply subject comes with the request and lives on
// the connection that received it: when busd restarts, it is gone, and the
// answer is refused. So a caller whose connection was re-established, or
// that heard nothing for ResumeAfter, publishes (no answer expected) a
// message whose reply subject is the check's reply subject, with the check's
// HeaderRequestID — again every ResumeEvery while it hears nothing.
// Every policyd receives it, so the bus lets it answer there again: a check
// still being decided is answered when decided; one answered in the last
// AnswerKept is answered again, the same decision (one decision, one
// record); anything else is ignored. policyd never publishes but on the
// reply subject of the check's own request.
const SubjectCheckResume = "moat.policy.resume"

// SubjectResolveResume is SubjectCheckResume for moat.profile.resolve:
// every profiled hears it, answers a resolution still in progress when done
// and sends again one it answered in the last AnswerKept (one resolution,
// one record).
const SubjectResolveResume = "moat.profile.resume"

// HeaderResent marks a request sent again, same request id, same reply
// subject and body, by a caller whose connection was re-established before
// it heard anything of it: the request may have been lost with the bus.
// A service that keeps its answers (pkg/service's HandleKept) handles it
// only if it has not already: one it answered gets the kept answer again,
// one still being handled is answered once, when done. sandboxd's once-only
// claims refuse one that ran (409). See docs/bus.md, "A restart of the bus".
const HeaderResent = "Moat-Resent"

// The timing of resumes (SubjectCheckResume, SubjectResolveResume).
const (
	ResumeAfter = 2 * time.Second
	ResumeEvery = time.Second
	AnswerKept  = time.Minute
)

// CheckRequest asks policyd for a decision on one command.
type CheckRequest struct {
	RequestID string     `json:"request_id,omitempty"`
	SessionID string     `json:"session_id,omitempty"`
	Argv      []string   `json:"argv"`
	Cwd       string     `json:"cwd,omitempty"`
	Workspace string     `json:"workspace,omitempty"`
	Profile   ProfileRef `json:"profile"`
	// Approval is what a prompt becomes: "never" denies it at once,
	// "on-request" asks a person and waits; empty reports the prompt as is
	// (a dry run, as `moat check` does).
	Approval string `json:"approval,omitempty"`
	// ApprovalTimeoutMS shortens policyd's approval timeout for this request.
	ApprovalTimeoutMS int64 `json:"approval_timeout_ms,omitempty"`
	// ProfileHash names a resolved profile policyd keeps, by its
	// ProfileHash, instead of Profile (profilehash.go).
	ProfileHash string `json:"profile_hash,omitempty"`
	// Net, from sandboxd only, asks a person for a network destination
	// instead of judging Argv (netask.go).
	Net *NetAsk `json:"net,omitempty"`
	// Env are the variables the run sets beside Argv (a RunRequest's env,
	// credentials left out): judged as assignments written before it.
	Env map[string]string `json:"env,omitempty"`
}

// ProfileRef is a profile given by name (resolved by policyd through
// profiled) or already resolved. It encodes as a string or an object.
type ProfileRef struct {
	Name     string
	Resolved *Profile
}

// RefName refers to a profile by name.
func RefName(name string) ProfileRef { return ProfileRef{Name: name} }

// RefResolved refers to an already resolved profile.
func RefResolved(p *Profile) ProfileRef { return ProfileRef{Resolved: p} }

func (r ProfileRef) MarshalJSON() ([]byte, error) {
	if r.Resolved != nil {
		return json.Marshal(r.Resolved)
	}
	return json.Marshal(r.Name)
}

func (r *ProfileRef) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*r = ProfileRef{}
		return nil
	case len(b) > 0 && b[0] == '"':
		*r = ProfileRef{}
		return json.Unmarshal(b, &r.Name)
	case len(b) > 0 && b[0] == '{':
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		var p Profile
		if err := dec.Decode(&p); err != nil {
			return fmt.Errorf("profile: %w", err)
		}
		*r = ProfileRef{Resolved: &p}
		return nil
	}
	return fmt.Errorf("profile must be a name or a resolved profile object")
}

func (r ProfileRef) EncodeMsgpack(enc *msgpack.Encoder) error {
	if r.Resolved != nil {
		return enc.Encode(r.Resolved)
	}
	return enc.EncodeString(r.Name)
}

func (r *ProfileRef) DecodeMsgpack(dec *msgpack.Decoder) error {
	c, err := dec.PeekCode()
	if err != nil {
		return err
	}
	*r = ProfileRef{}
	switch {
	case c == msgpcode.Nil:
		return dec.DecodeNil()
	case msgpcode.IsString(c):
		r.Name, err = dec.DecodeString()
		return err
	case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
		var p Profile
		if err := dec.Decode(&p); err != nil {
			return err
		}
		r.Resolved = &p
		return nil
	}
	return fmt.Errorf("profile must be a name or a resolved profile map")
}

// ApprovalAsk is the question policyd publishes on moat.approval.ask.<id>.
type ApprovalAsk struct {
	ID        string    `json:"id"`
	RequestID string    `json:"request_id,omitempty"`
	SessionID string    `json:"session_id,omitempty"`
	Argv      []string  `json:"argv"`
	Cwd       string    `json:"cwd"`
	Workspace string    `json:"workspace"`
	Profile   string    `json:"profile"`
	Reasons   []Reason  `json:"reasons"`
	Net       *NetAsk   `json:"net,omitempty"` // a network ask: Argv is NetArgv of its destination
	AskedBy   string    `json:"asked_by"`      // the policyd instance waiting
	AskedAt   time.Time `json:"asked_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// ApprovalAnswer is a person's answer on moat.approval.answer.<id>.
type ApprovalAnswer struct {
	ID      string `json:"id"`
	Verdict string `json:"verdict"` // allow or deny
	By      string `json:"by,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// For grants more than this once (an allow only; see ParseGrant):
	// once (empty), session, a duration, a use count, or rule.
	For string `json:"for,omitempty"`
	// Prefix narrows a grant to commands that start with these words (a
	// leading part of the asked argv); empty: the exact argv.
	Prefix []string `json:"prefix,omitempty"`
}

// ApprovalAck is policyd's reply to an answer.
type ApprovalAck struct {
	ID      string `json:"id"`
	Verdict string `json:"verdict"`
	Grant   *Grant `json:"grant,omitempty"` // the grant the answer made, if any
}

// ApprovalWait is what a caller learns while a person is asked about its
// command (from policyd's interim messages): for `moat check` and `moat
// run` to say who is asked and how long is left.
type ApprovalWait struct {
	Event     string    `json:"event"` // "approval.waiting"
	ID        string    `json:"approval_id"`
	Reason    string    `json:"reason,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
}

// ApprovalList is one policyd instance's pending questions.
type ApprovalList struct {
	Instance string        `json:"instance"`
	Pending  []ApprovalAsk `json:"pending"`
}

// HeaderApprovalID and HeaderApprovalExpires mark policyd's interim reply to a
// check that waits for a person: the caller stretches its deadline to the expiry.
// A caller that can wait sets HeaderAcceptInterim on its request.
const (
	HeaderApprovalID      = "Moat-Approval-Id"
	HeaderApprovalExpires = "Moat-Approval-Expires"
	HeaderAcceptInterim   = "Moat-Accept-Interim"
	HeaderHeartbeat       = "Moat-Heartbeat" // sandboxd: still running
	HeaderStream          = "Moat-Stream"    // live output: stdout or stderr
)

// Reason rule ids that several parts produce.
const (
	ReasonApprovalTimeout   = "approval-timeout"
	ReasonApprovalNever     = "approval-never"
	ReasonPolicyTimeout     = "policy-timeout"
	ReasonPolicyUnavailable = "policy-unavailable"
	ReasonPolicyError       = "policy-error"
	ReasonAuditUnavailable  = "audit-unavailable"
	// ReasonApprovalBusy: policyd already waits on its limit of approvals.
	ReasonApprovalBusy = "approval-busy"
	// ReasonApprovalCancelled: the caller went away or cancelled while a
	// person was asked, or policyd stopped; nobody may act on the answer.
	ReasonApprovalCancelled = "approval-cancelled"
	// ReasonSandboxed, ReasonNetAllowlistUnknown and ReasonWriteTmp are
	// allows that rest on the run's confinement (no rule names the command;
	// hosts the egress proxy holds to the allowlist; a write to the run's
	// private /tmp): a caller that will not confine the command must not
	// take them as allows (moat hook without --sandbox).
	ReasonSandboxed           = "default.sandboxed"
	ReasonNetAllowlistUnknown = "net.allowlist-unknown"
	ReasonWriteTmp            = "fs.write-tmp" // the sandbox's /tmp is private
)

// RestsOnConfinement reports whether allow d holds only for a confined run.
func RestsOnConfinement(d *Decision) bool {
	for _, r := range d.Reasons {
		if r.Rule == ReasonSandboxed || r.Rule == ReasonNetAllowlistUnknown || r.Rule == ReasonWriteTmp {
			return true
		}
	}
	return false
}

// The approval wait (docs/bus.md, "Waiting for a person"). While policyd
// waits for a person on a check whose caller set HeaderAcceptInterim, it
// sends the caller, on the check's reply subject, an empty interim message
// at once and every ApprovalHeartbeat: HeaderApprovalID, HeaderApprovalExpires,
// HeaderApprovalReason (why a person is asked) and HeaderHeartbeat, with the
// approval's control subject as its reply subject. On the control subject
// the caller answers each with HeaderHeartbeat HeartbeatAck, and gives up
// with HeaderCancel. policyd ends the wait — a deny, approval-cancelled —
// when the caller cancels, when an interim finds no subscriber (the caller
// is gone), or when no ack came for ApprovalCallerSilence. A pending
// approval holds none of policyd's or sandboxd's request slots; policyd
// holds at most its --max-approvals at once and answers approval-busy past it.
const (
	HeaderApprovalReason = "Moat-Approval-Reason"

	ApprovalHeartbeat     = time.Second
	ApprovalCallerSilence = 10 * time.Second
)

// The record's ack to the caller (docs/bus.md, "An allow's record acked to
// its caller"). A check that sets HeaderRecordAck to a token of its own
// (NewToken) lets policyd answer an allow before its record is acked:
// policyd sends the record with RecordAckSubject(reply, token) as its reply
// subject, so JetStream's ack of it goes to the caller, and answers at once
// with HeaderRecordAck set to that subject. Such an allow stands only once
// that ack has come and names AuditStream. An answer without the header is
// final, as before. policyd honours the ask only for a well-formed token
// (ValidToken) and a reply subject under a caller's inbox (CallerReply), so
// the ack goes nowhere but there, under a name only the caller and policyd
// know.
const HeaderRecordAck = "Moat-Record-Ack"

// RecordAckSubject is where the record of an allow answered on reply is
// acked, for the caller's token.
func RecordAckSubject(reply, token string) string { return reply + "." + token }

// CallerReply reports whether reply is under the inbox of a caller
// connection (CallerInbox of one of CallerRoles), which no other connection
// may read. Not the standard _INBOX. prefix: every connection that claims
// no inbox id (the NATS CLI, busd's own) may read there.
func CallerReply(reply string) bool {
	for _, r := range CallerRoles {
		if strings.HasPrefix(reply, InboxPrefix(r)+".") {
			return true
		}
	}
	return false
}
