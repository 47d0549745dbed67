package store

import (
	"encoding/json"
	"io"

	"github.com/moatsec/moat/pkg/wire"
)

// Export writes every stored event as JSON lines, oldest first.
func (s *Store) Export(w io.Writer) error {
	enc := json.NewEncoder(w)
	for cur := uint64(0); ; {
		page, err := s.Query(wire.AuditQuery{Limit: wire.MaxAuditPage, Cursor: cur})
		if err != nil {
			return err
		}
		for i := range page.Events {
			if err := enc.Encode(&page.Events[i].Event); err != nil {
				return err
			}
		}
		if page.Next == 0 {
			return nil
		}
		cur = page.Next
	}
}
