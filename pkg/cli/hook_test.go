package cli

import "testing"

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"plain":         "plain",
		"":              "''",
		"two words":     "'two words'",
		"it's":          `'it'\''s'`,
		"$(rm -rf ~)":   "'$(rm -rf ~)'",
		"a\nb":          "'a\nb'",
		"/usr/bin/moat": "/usr/bin/moat",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
