// Package truncate shortens text for people without cutting a UTF-8
// character in half: the one helper every package uses for that.
package truncate

import "unicode/utf8"

// Ellipsis marks text that was cut.
const Ellipsis = "..."

// String returns s when it is at most n bytes long; otherwise the longest
// prefix that, with [Ellipsis], fits in n bytes and ends on a character
// boundary, followed by [Ellipsis]. Invalid UTF-8 in s is kept byte for
// byte; only the cut point is chosen with care. n below len(Ellipsis)
// returns as much of the ellipsis as fits.
func String(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n <= len(Ellipsis) {
		return Ellipsis[:max(n, 0)]
	}
	cut := n - len(Ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + Ellipsis
}
