package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/moatsec/moat/pkg/wire"
)

// Bounds of one event, so that no event can make the trail unreadable.
const (
	MaxFieldBytes = 4 << 10  // one string: an argument, the cwd, a reason, a detail value
	MaxArgvBytes  = 32 << 10 // the arguments all together
	markerRoom    = 192      // kept free under MaxArgvBytes for the marker of the rest
)

// Bound cuts an event's oversized strings in place of copies (the caller's
// slices and maps stay whole): each longer than MaxFieldBytes keeps its
// start and ends with a marker giving its length and the SHA-256 of the
// whole value, e.g. "…[cut: 204800 bytes, sha256:9f86…]"; arguments past
// MaxArgvBytes in all become one marker for the rest. The hash is of the
// value as sanitized (Bound runs after the sanitizer), so it never
// confirms a guessed secret. Bounding twice changes nothing.
func Bound(ev *wire.AuditEvent) {
	ev.Cwd = cut(ev.Cwd)
	if n := argvBytes(ev.Argv); n > MaxArgvBytes || longest(ev.Argv) > MaxFieldBytes {
		ev.Argv = boundArgv(ev.Argv)
	}
	for i, r := range ev.Reasons {
		if len(r.Message) > MaxFieldBytes || len(r.Rule) > MaxFieldBytes || len(r.Source) > MaxFieldBytes {
			reasons := append([]wire.Reason(nil), ev.Reasons...)
			for j := i; j < len(reasons); j++ {
				reasons[j].Message, reasons[j].Rule, reasons[j].Source = cut(reasons[j].Message), cut(reasons[j].Rule), cut(reasons[j].Source)
			}
			ev.Reasons = reasons
			break
		}
	}
	if ev.Detail != nil && needsBound(ev.Detail) {
		ev.Detail = boundValue(ev.Detail).(map[string]any)
	}
}

// cut bounds one string.
func cut(s string) string {
	if len(s) <= MaxFieldBytes {
		return s
	}
	return cutWith(s, fmt.Sprintf("…[cut: %d bytes, sha256:%s]", len(s), hash(s)))
}

// cutWith keeps the start of s, on a rune boundary, and ends it with marker
// within MaxFieldBytes.
func cutWith(s, marker string) string {
	keep := max(MaxFieldBytes-len(marker), 0)
	for keep > 0 && keep < len(s) && !utf8.RuneStart(s[keep]) {
		keep--
	}
	return s[:min(keep, len(s))] + marker
}

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func argvBytes(argv []string) int {
	n := 0
	for _, a := range argv {
		n += len(a)
	}
	return n
}

func longest(l []string) int {
	n := 0
	for _, s := range l {
		n = max(n, len(s))
	}
	return n
}

// boundArgv cuts each argument, and replaces those past MaxArgvBytes by
// one marker naming how many there were and the hash of them all (joined
// by NUL).
func boundArgv(argv []string) []string {
	out := make([]string, 0, len(argv))
	total := 0
	for i, a := range argv {
		a = cut(a)
		if total+len(a) > MaxArgvBytes-markerRoom {
			rest := argv[i:]
			marker := fmt.Sprintf("…[cut: %d more arguments, %d bytes, sha256:%s]", len(rest), argvBytes(rest)+len(rest)-1, hash(strings.Join(rest, "\x00")))
			return append(out, marker)
		}
		total += len(a)
		out = append(out, a)
	}
	return out
}

// needsBound reports whether a detail value holds a string to cut.
func needsBound(v any) bool {
	switch x := v.(type) {
	case string:
		return len(x) > MaxFieldBytes
	case []string:
		return longest(x) > MaxFieldBytes
	case []any:
		for _, e := range x {
			if needsBound(e) {
				return true
			}
		}
	case map[string]any:
		for k, e := range x {
			if len(k) > MaxFieldBytes || needsBound(e) {
				return true
			}
		}
	case map[string]string:
		for k, e := range x {
			if len(k) > MaxFieldBytes || len(e) > MaxFieldBytes {
				return true
			}
		}
	}
	return false
}

// boundValue returns a bounded copy of a detail value.
func boundValue(v any) any {
	switch x := v.(type) {
	case string:
		return cut(x)
	case []string:
		out := make([]string, len(x))
		for i, e := range x {
			out[i] = cut(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = boundValue(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[cut(k)] = boundValue(e)
		}
		return out
	case map[string]string:
		out := make(map[string]string, len(x))
		for k, e := range x {
			out[cut(k)] = cut(e)
		}
		return out
	}
	return v
}
