package policy

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// PrefixRuleLine writes one prefix_rule call, on one line with its newline,
// in Codex's rules format: its pattern is exactly words (each a literal, no
// alternatives), its decision "allow", "prompt" or "forbidden".
//
// It refuses what the format cannot say exactly, so that a file made of
// such lines always loads and each line matches exactly the command it
// names: a word that is not UTF-8 (a Starlark string is text, and a \x
// escape past ASCII is a syntax error) is an error. The justification is
// free text: bytes that are not UTF-8 become U+FFFD. The line is parsed back
// before it is returned, and an error is returned unless it declares
// exactly this rule.
func PrefixRuleLine(words []string, decision, justification string) (string, error) {
	if len(words) == 0 {
		return "", errors.New("a prefix rule needs at least one word")
	}
	sev := severityOfCodex(decision)
	if decision != "allow" && decision != "prompt" && decision != "forbidden" {
		return "", fmt.Errorf(`decision %q: want "allow", "prompt" or "forbidden"`, decision)
	}
	quoted := make([]string, len(words))
	for i, w := range words {
		if !utf8.ValidString(w) {
			return "", fmt.Errorf("word %d (%q) is not UTF-8, which a rules file cannot hold: choose a prefix of the words before it", i+1, w)
		}
		quoted[i] = strconv.Quote(w)
	}
	justification = strings.ToValidUTF8(justification, "\uFFFD")
	line := fmt.Sprintf("prefix_rule(pattern = [%s], decision = %q", strings.Join(quoted, ", "), decision)
	if strings.TrimSpace(justification) != "" {
		line += ", justification = " + strconv.Quote(justification)
	}
	line += ")\n"
	// Parsed back: what is written must load, and mean exactly this.
	rs := emptyRuleset()
	if err := rs.parseFile("prefix_rule", []byte(line)); err != nil {
		return "", fmt.Errorf("the rule does not parse back (%v): report this with the words", err)
	}
	var got *prefixRule
	for _, rules := range rs.byFirst {
		got = rules[0]
	}
	if strings.TrimSpace(justification) == "" {
		justification = ""
	}
	want := make([][]string, len(words))
	for i, w := range words {
		want[i] = []string{w}
	}
	if rs.count != 1 || got == nil || got.decision != sev || got.justification != justification ||
		!slices.EqualFunc(got.pattern, want, slices.Equal[[]string]) {
		return "", errors.New("the rule parses back as another rule: report this with the words")
	}
	return line, nil
}
