package wire

import (
	"fmt"
	"time"
)

// AuditQuery asks auditd (moat.audit.query) for a page of stored events;
// empty fields match everything. A page ends at Limit events or once it
// holds MaxBytes of events (as JSON), whichever comes first, and always
// holds at least one event when one matches: no single event can make the
// trail unreadable.
type AuditQuery struct {
	SessionID string    `json:"session_id,omitempty"`
	RequestID string    `json:"request_id,omitempty"`
	Kind      string    `json:"kind,omitempty"`
	Verdict   string    `json:"verdict,omitempty"`
	Profile   string    `json:"profile,omitempty"`
	Source    string    `json:"source,omitempty"`
	Since     time.Time `json:"since,omitempty"`
	Until     time.Time `json:"until,omitempty"`
	Text      string    `json:"text,omitempty"`      // in argv, cwd, reasons or details
	Limit     int       `json:"limit,omitempty"`     // events per page (default 100, at most MaxAuditPage)
	MaxBytes  int       `json:"max_bytes,omitempty"` // bytes per page (default and at most MaxAuditPageBytes)
	Cursor    uint64    `json:"cursor,omitempty"`    // records after this seq
}

// Bounds of one page of moat.audit.query.
const (
	MaxAuditPage      = 1000
	MaxAuditPageBytes = 256 << 10
)

// AuditPage is one page of events; Next is the cursor of the next page (0: none).
type AuditPage struct {
	Events []StoredEvent `json:"events"`
	Next   uint64        `json:"next_cursor,omitempty"`
}

// StoredEvent is an event with its place (seq) in the store.
type StoredEvent struct {
	Seq   uint64     `json:"seq"`
	Event AuditEvent `json:"event"`
}

// AuditVerifyReport answers moat.audit.verify (and `auditd verify`).
// AnchorSize is the size of the signed checkpoint kept outside the store
// (see AuditAnchorBucket) that the store was checked against (0: none);
// Missing counts the records it covers that the store no longer has.
// OpenRuns counts runs with an allow decision on record but no exit
// record (still running, or their exit was lost); OpenRunIDs names the
// first of them.
type AuditVerifyReport struct {
	OK          bool          `json:"ok"`
	Segments    int           `json:"segments"`
	Records     uint64        `json:"records"`
	Checkpoints int           `json:"checkpoints"`
	FirstSeq    uint64        `json:"first_seq"`
	LastSeq     uint64        `json:"last_seq"`
	AnchorSize  uint64        `json:"anchor_size,omitempty"`
	Missing     uint64        `json:"missing,omitempty"`
	OpenRuns    int           `json:"open_runs,omitempty"`
	OpenRunIDs  []string      `json:"open_run_ids,omitempty"`
	Problem     *AuditProblem `json:"problem,omitempty"`
}

// The audit anchor: auditd puts each signed checkpoint it writes (as JSON,
// the store's Checkpoint) under AuditAnchorKey in the JetStream key-value
// bucket AuditAnchorBucket, outside the store, so that verify can prove the
// store still reaches it: a deleted or truncated tail is found and counted.
const (
	AuditAnchorBucket = "MOAT_AUDIT_ANCHOR"
	AuditAnchorKey    = "checkpoint"
)

// AuditProblem names the first bad spot of a store.
type AuditProblem struct {
	Segment string `json:"segment"`
	Offset  int64  `json:"offset"`
	Seq     uint64 `json:"seq,omitempty"`
	Reason  string `json:"reason"`
}

func (p *AuditProblem) Error() string {
	if p.Seq > 0 {
		return fmt.Sprintf("%s offset %d record %d: %s", p.Segment, p.Offset, p.Seq, p.Reason)
	}
	return fmt.Sprintf("%s offset %d: %s", p.Segment, p.Offset, p.Reason)
}

// AuditStoreStats describe a store.
type AuditStoreStats struct {
	Records    uint64  `json:"records"`
	Segments   int     `json:"segments"`
	DiskBytes  int64   `json:"disk_bytes"`
	JSONBytes  int64   `json:"json_lines_bytes"`
	Ratio      float64 `json:"ratio"` // JSON lines size / size on disk
	LastSeq    uint64  `json:"last_seq"`
	Head       string  `json:"head"`
	CutOnStart int     `json:"torn_tails_cut"`
}

// AuditStats answers moat.audit.stats: the store, and the messages in the
// stream not yet stored (Lag: an event alone or a batch of them counts
// one; docs/bus.md, "Audit batches").
type AuditStats struct {
	AuditStoreStats
	Lag       uint64 `json:"lag"`
	Instance  string `json:"instance"`
	Consuming bool   `json:"consuming"`
	Problem   string `json:"problem,omitempty"` // damage that keeps the store read-only
}

// Validate checks a query's fields (called by Decode): a 400 naming the
// field, before the store is touched.
func (q *AuditQuery) Validate() error {
	if q.Limit < 0 || q.MaxBytes < 0 {
		return Errorf(CodeBadRequest, "limit and max_bytes are not negative (0: the default)")
	}
	return firstErr(CheckID("session_id", q.SessionID), CheckID("request_id", q.RequestID),
		checkText("kind", q.Kind, MaxNameBytes), checkText("verdict", q.Verdict, MaxNameBytes),
		checkText("profile", q.Profile, MaxNameBytes), checkText("source", q.Source, MaxNameBytes),
		checkText("text", q.Text, MaxPathBytes))
}
