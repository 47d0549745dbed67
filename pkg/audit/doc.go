// Package audit holds what every component shares about the audit trail:
// the [Publisher] that stamps events and makes them durable in the MOAT_AUDIT
// stream before the caller goes on.
//
// Invariant: a publisher returns success only after JetStream acked the event,
// so whatever a daemon does after Publish returns is already on record.
package audit
