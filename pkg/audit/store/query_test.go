package store

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/moatsec/moat/pkg/wire"
)

// TestQueryPagesByBytes: a page ends at MaxBytes of events as well as at
// Limit, and holds at least one event, so large events never make a page
// too big to send, and one huge event is still readable.
func TestQueryPagesByBytes(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	evs := events(100, 0)
	for _, ev := range evs {
		ev.Cwd = strings.Repeat("c", 30<<10)
	}
	evs[50].Cwd = strings.Repeat("h", 600<<10) // alone bigger than a page
	if _, err := s.Append(evs); err != nil {
		t.Fatal(err)
	}
	seen := 0
	for cur := uint64(0); ; {
		page, err := s.Query(wire.AuditQuery{Limit: 1000, Cursor: cur})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(page)
		if len(page.Events) == 0 || (len(page.Events) > 1 && len(body) > wire.MaxAuditPageBytes+1024) {
			t.Fatalf("a page of %d events is %d bytes", len(page.Events), len(body))
		}
		seen += len(page.Events)
		if page.Next == 0 {
			break
		}
		cur = page.Next
	}
	if seen != 100 {
		t.Fatalf("paged through %d events, want 100", seen)
	}
	page, _ := s.Query(wire.AuditQuery{Limit: 1000, MaxBytes: 100 << 10})
	if len(page.Events) != 3 || page.Next != page.Events[2].Seq {
		t.Fatalf("MaxBytes 100 KiB: %d events, next %d", len(page.Events), page.Next)
	}
}
