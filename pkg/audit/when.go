package audit

import (
	"fmt"
	"time"
)

// ParseTime reads a --since/--until value: an RFC 3339 time
// ("2026-11-26T10:00:00Z") or a duration ago ("1h", counted back from now).
// "" is the zero time (no bound).
func ParseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: want RFC 3339 (2026-11-26T10:00:00Z) or a duration ago such as 1h", s)
	}
	return t, nil
}
