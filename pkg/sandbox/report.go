package sandbox

import (
	"fmt"
	"io"

	"github.com/moatsec/moat/pkg/wire"
)

// ReportQuarantine tells, on w, what the check after a run moved aside.
func ReportQuarantine(w io.Writer, moved []wire.Quarantined) {
	for _, q := range moved {
		to := q.MovedTo
		if to == "" {
			to = "nowhere"
		}
		fmt.Fprintf(w, "moat: moved %s to %s: %s\n", q.Path, to, q.Reason)
	}
}
