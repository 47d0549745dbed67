// Package store is moat's audit store: segments of CRC32C-framed,
// zstd-compressed blocks of hash-chained records, Ed25519-signed
// checkpoints, an index per segment, rotation and retention, and the
// queries, export and verification that read it. Only auditd and offline
// tools (`auditd verify|export|query`) link it; what crosses the bus (the
// query, its page, the verify report) is in package wire.
//
// Invariants: one goroutine at a time appends; a block is fsynced before
// Append returns, so a caller acks upstream only what is durable; records'
// seqs run 1, 2, 3… without gaps across segments; damage is never repaired
// by deletion (see Open).
package store
