package sandboxd

import (
	"testing"
	"time"
)

// HoldHeartbeats holds back the heartbeats runs send of their own (the
// first would go out in an hour) until the test ends, so that the only
// heartbeats a caller hears answer its resumes (wire.SubjectRunResume).
// Call it before the stack starts; tests that call it must not run in
// parallel.
func HoldHeartbeats(t testing.TB) {
	was := firstHeartbeat
	firstHeartbeat = time.Hour
	t.Cleanup(func() { firstHeartbeat = was })
}
