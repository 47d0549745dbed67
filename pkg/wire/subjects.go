package wire

import "github.com/google/uuid"

// Subjects of the v1 contract; docs/bus.md describes each.
const (
	SubjectResolve     = "moat.profile.resolve"
	SubjectProfileList = "moat.profile.list"
	SubjectCheck       = "moat.policy.check"
	SubjectApprovalAsk = "moat.approval.ask"    // + ".<id>"
	SubjectApprovalAns = "moat.approval.answer" // + ".<id>"
	SubjectRun         = "moat.sandbox.run"
	SubjectAuditQuery  = "moat.audit.query"
	SubjectAuditVerify = "moat.audit.verify"
	SubjectAuditStats  = "moat.audit.stats"
	SubjectAuditCkpt   = "moat.audit.checkpoint"
	// SubjectBusStopping is busd's word to moat's daemons that it is
	// stopping: each finishes or cancels its work, records it, answers its
	// callers and disconnects, while busd waits (bus.Server.Drain).
	SubjectBusStopping = "moat.bus.stopping"
	SubjectAuditEvents = "moat.audit.evt" // + ".<source>.<kind>"
	AuditStream        = "MOAT_AUDIT"
	SubjectRunClaim    = "moat.claim.run" // + ".<key>": sandboxd claims a request id once (MOAT_RUNS)
	RunsStream         = "MOAT_RUNS"
	DefaultQueueGroup  = "q"
	DefaultBusURL      = "nats://127.0.0.1:4222"
	DefaultListen      = "127.0.0.1:4222"
)

// SubjectCheckResolved is moat.policy.check for sandboxd alone (only its key
// may publish it): the profile it sends is the one profiled resolved for the
// run, so grants may cover its prompts. A profile a caller sends on
// SubjectCheck is judged as given, but no grant covers it.
const SubjectCheckResolved = "moat.policy.check.resolved"

// SubjectRunLive + ".<instance>" is each sandboxd's liveness record in
// MOAT_RUNS, rewritten every few seconds, so that a run claim whose holder is
// gone is closed by another sandboxd (docs/bus.md, "Runs happen once").
const SubjectRunLive = "moat.claim.live"

// Service names as registered with nats.go/micro.
const (
	ServiceProfiled = "profiled"
	ServicePolicyd  = "policyd"
	ServiceSandboxd = "sandboxd"
	ServiceAuditd   = "auditd"
)

// Services lists every daemon that answers on the bus, in pipeline order.
var Services = []string{ServiceProfiled, ServicePolicyd, ServiceSandboxd, ServiceAuditd}

// StopOrder is the order busd tells the daemons to stop in
// (SubjectBusStopping): each caller before the services it calls, so a
// daemon finishing its last requests still reaches them, and auditd last.
var StopOrder = []string{ServiceSandboxd, ServicePolicyd, ServiceProfiled, ServiceAuditd}

// AuditSubject is the subject an audit event of kind (e.g. "profile.resolved")
// from source is published on. Dots in kind stay: moat.audit.evt.profiled.profile.resolved.
func AuditSubject(source, kind string) string {
	return SubjectAuditEvents + "." + source + "." + kind
}

// ApprovalAskSubject and ApprovalAnswerSubject name one approval's subjects.
func ApprovalAskSubject(id string) string    { return SubjectApprovalAsk + "." + id }
func ApprovalAnswerSubject(id string) string { return SubjectApprovalAns + "." + id }

// Headers on every request and event.
const (
	HeaderRequestID   = "Moat-Request-Id"
	HeaderSessionID   = "Moat-Session-Id"
	HeaderKind        = "Moat-Kind"
	HeaderVerdict     = "Moat-Verdict"
	HeaderContentType = "Content-Type"
	HeaderMsgID       = "Nats-Msg-Id"
	HeaderErrorCode   = "Nats-Service-Error-Code"
	HeaderError       = "Nats-Service-Error"
	// HeaderAuditBatch counts the events of an audit batch message (Moat-Kind
	// audit.batch; docs/bus.md, "Audit batches").
	HeaderAuditBatch = "Moat-Batch"
)

// Content types.
const (
	ContentMsgpack = "application/msgpack"
	ContentJSON    = "application/json"
)

// InboxPrefix is the private reply prefix of a role. Each component receives
// replies only under its own prefix, and busd lets no other key subscribe
// there, so no other key can read its answers.
func InboxPrefix(role string) string { return "_INBOX_" + role }

// NewID returns a fresh id that sorts by time (UUIDv7), for requests, sessions
// and audit events.
func NewID() string { return uuid.Must(uuid.NewV7()).String() }
