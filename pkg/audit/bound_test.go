package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/moatsec/moat/pkg/wire"
)

// TestBoundCutsOversizedFields: a 200 KB argument (or detail, or reason)
// is cut in the event with a marker and the hash of the whole value; the
// caller's data stays whole, and bounding twice changes nothing.
func TestBoundCutsOversizedFields(t *testing.T) {
	big := strings.Repeat("é", 100<<10) // 200 KB, two bytes a rune
	many := make([]string, 100)
	for i := range many {
		many[i] = strings.Repeat("x", 2<<10)
	}
	argv := append([]string{"echo", big}, many...)
	detail := map[string]any{"stdout": big, "nested": map[string]any{"v": big}, "list": []string{big}}
	ev := &wire.AuditEvent{Argv: argv, Cwd: "/w", Reasons: []wire.Reason{{Message: big}}, Detail: detail}
	Bound(ev)
	if argv[1] != big || detail["stdout"] != big {
		t.Fatal("bounding rewrote the caller's data")
	}
	sum := sha256.Sum256([]byte(big))
	got := ev.Argv[1]
	if len(got) > MaxFieldBytes || !utf8.ValidString(got) || !strings.Contains(got, "204800 bytes") || !strings.Contains(got, hex.EncodeToString(sum[:])) {
		t.Fatalf("argument not cut with a marker and the whole value's hash: %d bytes, ends %q", len(got), got[max(0, len(got)-120):])
	}
	total := 0
	for _, a := range ev.Argv {
		total += len(a)
	}
	if total > MaxArgvBytes+MaxFieldBytes || !strings.Contains(ev.Argv[len(ev.Argv)-1], "more arguments") {
		t.Fatalf("argv not bounded as a whole: %d bytes in %d args, last %q", total, len(ev.Argv), ev.Argv[len(ev.Argv)-1])
	}
	if len(ev.Reasons[0].Message) > MaxFieldBytes || len(ev.Detail["stdout"].(string)) > MaxFieldBytes ||
		len(ev.Detail["nested"].(map[string]any)["v"].(string)) > MaxFieldBytes || len(ev.Detail["list"].([]string)[0]) > MaxFieldBytes {
		t.Fatalf("a reason or a detail is not bounded: %+v", ev.Detail)
	}
	again := *ev
	Bound(&again)
	if strings.Join(again.Argv, "\x00") != strings.Join(ev.Argv, "\x00") || again.Detail["stdout"] != ev.Detail["stdout"] {
		t.Fatal("bounding twice changed the event")
	}
	small := &wire.AuditEvent{Argv: []string{"ls", "-l"}}
	Bound(small)
	if strings.Join(small.Argv, " ") != "ls -l" {
		t.Fatalf("a small event changed: %v", small.Argv)
	}
}
