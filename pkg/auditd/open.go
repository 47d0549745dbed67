package auditd

import (
	"errors"
	"log/slog"

	"github.com/moatsec/moat/pkg/audit/store"
)

// OpenStore opens the daemon's store: for writing when it is whole and
// reaches its anchor (opts.Anchor), and otherwise read-only, with the
// reason (problem, logged with the command to investigate). Nothing is
// repaired by deletion: a damaged store, or one behind its anchor, stays as
// found, events wait in the stream, and queries are served from what can
// be read.
func OpenStore(opts store.Options, log *slog.Logger) (st *store.Store, problem string, err error) {
	st, err = store.Open(opts)
	var dmg *store.DamageError
	var behind *store.AnchorError
	switch {
	case errors.As(err, &dmg):
		log.Error("audit store damaged: not storing events until a person repairs it; serving queries read-only",
			"segment", dmg.Segment, "offset", dmg.Offset, "reason", dmg.Reason, "investigate", "auditd verify --dir "+opts.Dir)
		problem = dmg.Error()
	case errors.As(err, &behind):
		log.Error("audit store does not reach its anchor: not storing events until a person repairs it; serving queries read-only",
			"records", behind.LastSeq, "anchor", behind.Anchor.Size, "investigate", "auditd verify --dir "+opts.Dir+" --anchor bus")
		problem = behind.Error()
	case err != nil:
		return nil, "", err
	default:
		return st, "", nil
	}
	st, err = store.OpenReadOnly(opts.Dir)
	return st, problem, err
}
