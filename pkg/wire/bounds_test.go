package wire

import (
	"runtime"
	"strings"
	"testing"
)

// allocPerByte and allocSlack bound what decoding may allocate: at most
// allocPerByte bytes per byte of body, plus allocSlack. A decoder that trusts
// a declared length breaks this by orders of magnitude (13 bytes declaring a
// 2 GiB stdin allocated 2 GiB); a linear bound is what a body limit can cap.
const (
	allocPerByte = 128
	allocSlack   = 16 << 10
)

// allocated is how many bytes f allocates on the heap (all goroutines: keep
// it out of parallel tests). ReadMemStats flushes every cache, so the count
// is exact where runtime/metrics would count whole spans.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// decodeTargets are the messages services and clients decode.
func decodeTargets() []any {
	return []any{&ResolveRequest{}, &RunRequest{}, &CheckRequest{}, &AuditEvent{}, &Profile{}, &RunResult{}}
}

// TestDecodeBounded feeds the hostile bodies of issue 16 (13 bytes that made
// sandboxd allocate 2 GiB, 10 bytes that added 76 MB): each is refused with a
// 400 naming the length, having allocated almost nothing.
func TestDecodeBounded(t *testing.T) {
	tests := []struct {
		name string
		body string
		msg  string
	}{
		{"bin32 stdin of 2 GiB", "\x81\xa5stdin\xc6\x7f\xff\xff\xff", "declares 2147483647 bytes"},
		{"map32 env of 2^32-1", "\x81\xa3env\xdf\xff\xff\xff\xff", "declares 4294967295 entries"},
		{"array32 argv", "\x81\xa4argv\xdd\x00\xff\xff\xff", "declares 16777215 entries"},
		{"str32 request id", "\x81\xaarequest_id\xdb\x7f\xff\xff\xff", "declares 2147483647 bytes"},
		{"ext32", "\x81\xa5stdin\xc9\x7f\xff\xff\xff\x01", "declares"},
		{"nested past the depth", "\x81\xa3env" + strings.Repeat("\x91", 64) + "\xc0", "nests deeper"},
		{"top-level map32", "\xdf\x7f\xff\xff\xff", "declares 2147483647 entries"},
		{"cut length", "\x81\xa5stdin\xc6\x7f", "cut short"},
		{"never-used byte", "\x81\xa5stdin\xc1", "is not msgpack"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			n := allocated(func() { err = Decode(Msgpack, []byte(tt.body), &RunRequest{}) })
			if CodeOf(err) != CodeBadRequest || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v, want a 400 containing %q", err, tt.msg)
			}
			if limit := uint64(allocPerByte*len(tt.body) + allocSlack); n > limit {
				t.Fatalf("decoding %d bytes allocated %d bytes; the bound is %d", len(tt.body), n, limit)
			}
		})
	}
}

// FuzzDecodeAllocs decodes arbitrary bodies into every message type and
// fails when one allocates more than allocPerByte per byte of body (plus
// allocSlack). Its seeds run in every `go test`; `go test -fuzz
// FuzzDecodeAllocs ./pkg/wire` searches further.
func FuzzDecodeAllocs(f *testing.F) {
	for _, msg := range sampleMessages() {
		for _, format := range []Format{Msgpack, JSON} {
			b, _ := Encode(format, msg)
			f.Add(b)
		}
	}
	for _, s := range []string{
		"\x81\xa5stdin\xc6\x7f\xff\xff\xff", "\x81\xa3env\xdf\x00\xff\xff\xff", "\x81\xa4argv\xdd\x00\xff\xff\xff",
		"\x81\xa6detail\x9f\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80",
		`{"argv":["` + strings.Repeat("a", 1000) + `"],"stdin":"` + strings.Repeat("QUFB", 300) + `"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		format := DetectFormat("", body)
		for _, target := range decodeTargets() {
			Decode(format, body, target) // warm once: type caches, pools
			n := allocated(func() { Decode(format, body, target) })
			if limit := uint64(allocPerByte*len(body) + allocSlack); n > limit {
				t.Fatalf("decoding %d bytes into %T allocated %d bytes; the bound is %d", len(body), target, n, limit)
			}
		}
	})
}
