package truncate

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestString(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"abcdefghijk", 10, "abcdefg..."},
		{"héllo wörld", 8, "héll..."}, // é is two bytes: the cut keeps it whole
		{"ab€cd", 6, "ab..."},         // a cut inside € steps back before it
		{"日本語テキスト", 9, "日本..."},
		{"abc", 2, ".."},
		{"abc", 0, ""},
		{"abcdef", -1, ""},
	} {
		got := String(tc.in, tc.n)
		if got != tc.want {
			t.Errorf("String(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
		if len(got) > max(tc.n, 0) {
			t.Errorf("String(%q, %d) is %d bytes", tc.in, tc.n, len(got))
		}
		if utf8.ValidString(tc.in) && !utf8.ValidString(got) {
			t.Errorf("String(%q, %d) = %q cut a character", tc.in, tc.n, got)
		}
	}
}

func FuzzString(f *testing.F) {
	f.Add("héllo wörld", 8)
	f.Fuzz(func(t *testing.T, s string, n int) {
		n %= 1 << 12
		got := String(s, n)
		if len(got) > max(n, 0) && len(s) > max(n, 0) {
			t.Fatalf("%d bytes, limit %d", len(got), n)
		}
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Fatalf("cut a character: %q", got)
		}
		if len(s) <= n && got != s {
			t.Fatalf("changed a short string")
		}
		if len(s) > n && n > len(Ellipsis) && !strings.HasPrefix(s, strings.TrimSuffix(got, Ellipsis)) {
			t.Fatalf("not a prefix")
		}
	})
}
