// Package audit holds what every component shares about the audit trail:
// the [Publisher] that stamps events and makes them durable in the MOAT_AUDIT
// stream before the caller goes on, and the [Sanitizer] that removes what
// must never reach a disk. It is small on purpose: every daemon and the CLI
// link it. The store (segments, query, verify) lives in package
// [github.com/moatsec/moat/pkg/audit/store], which only auditd and offline
// tools need.
//
// Invariants: a publisher returns success only after JetStream acked the
// event — alone, or in the batch message that carries it with others
// published at the same time (batch.go), acked as a whole — so whatever a
// daemon does after Publish returns is already on record; the publisher has
// no goroutine of its own (the caller who opens a batch sends it);
// sanitizing works on copies, so what a command runs with is never what the
// trail rewrote.
package audit
