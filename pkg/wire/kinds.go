package wire

// Audit event kinds: the Kind of an AuditEvent and the last words of its
// subject (moat.audit.evt.<source>.<kind>). Each names one thing that
// happened; docs/audit.md says which component records it and when.
const (
	KindProfileResolved = "profile.resolved" // profiled resolved a profile for a workspace
	KindProfileRefused  = "profile.refused"  // profiled refused a resolution (detail.error says why)
	KindPolicyDecision  = "policy.decision"  // policyd decided on a command
	KindApprovalAsked   = "approval.asked"   // policyd asked a person
	KindGrantCreated    = "grant.created"    // policyd stored a grant a person gave
	KindGrantUsed       = "grant.used"       // policyd allowed a prompt on a grant
	KindGrantRevoked    = "grant.revoked"    // a person ended a grant
	KindRunDecision     = "run.decision"     // sandboxd recorded the decision before a run (acked first)
	KindRunExit         = "run.exit"         // sandboxd: how a run ended
	KindRunFailed       = "run.failed"       // sandboxd: the sandbox could not run the command
	KindRunQuarantine   = "run.quarantine"   // sandboxd: files a run left were moved to MOAT_HOME/quarantine
	KindNetConn         = "net.conn"         // sandboxd: one connection through a run's egress proxy, allowed or refused
	KindAuditGap        = "audit.gap"        // auditd: a source's seq skipped numbers
	KindAuditMalformed  = "audit.malformed"  // auditd: a stream message that is no event
	KindAuditBatch      = "audit.batch"      // a publisher: many events in one message (docs/bus.md), never stored as one
	KindAuditTailCut    = "audit.tail_cut"   // auditd: an unfinished final frame was cut at open
)

// Exit codes of the moat command line and of sandboxd's answers, beside the
// command's own status.
const (
	ExitDenied         = 77  // policy refused (run) or denied (check)
	ExitPrompt         = 78  // check: a person would be asked
	ExitSandboxFailure = 125 // the sandbox could not run the command, or no sandboxd answered
)
