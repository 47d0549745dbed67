package policy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Evaluation is what `codex execpolicy check` prints, field for field, so
// that moat's answer and Codex's can be compared: every rule whose prefix
// matched and the strictest decision ("" when nothing matched, which the
// JSON omits).
type Evaluation struct {
	MatchedRules []RuleMatch `json:"matchedRules"`
	Decision     string      `json:"decision,omitempty"`
}

// RuleMatch is one matched rule in Codex's shape.
type RuleMatch struct {
	PrefixRuleMatch PrefixRuleMatch `json:"prefixRuleMatch"`
}

// PrefixRuleMatch says which prefix of the command matched and what the
// rule decides. ResolvedProgram is set when an absolute program path matched
// a rule by its base name.
type PrefixRuleMatch struct {
	MatchedPrefix   []string `json:"matchedPrefix"`
	Decision        string   `json:"decision"`
	ResolvedProgram string   `json:"resolvedProgram,omitempty"`
	Justification   string   `json:"justification,omitempty"`
}

// Check matches argv against the rules exactly as Codex's execpolicy does,
// with none of moat's own judging: exact first-token rules first; only when
// none matches, and resolveHost is set, an absolute program path falls back
// to rules for its base name, limited by host_executable. Paths written
// "~/…" are taken under home.
func (rs *Ruleset) Check(argv []string, resolveHost bool, home string) Evaluation {
	ev := Evaluation{MatchedRules: []RuleMatch{}}
	if len(argv) == 0 {
		return ev
	}
	ev.MatchedRules = rs.codexMatch(func(first string) []*prefixRule { return rs.byFirst[first] }, argv, resolveHost, home)
	worst := severity(-1)
	for _, m := range ev.MatchedRules {
		if s := severityOfCodex(m.PrefixRuleMatch.Decision); s > worst {
			worst = s
		}
	}
	if worst >= allow {
		ev.Decision = codexDecision(worst)
	}
	return ev
}

// codexMatch applies Codex's matching to the rules rulesFor gives for a
// first token, in order.
func (rs *Ruleset) codexMatch(rulesFor func(first string) []*prefixRule, argv []string, resolveHost bool, home string) []RuleMatch {
	out := []RuleMatch{}
	for _, r := range rulesFor(argv[0]) {
		if slices.Contains(r.pattern[0], argv[0]) {
			if p := r.prefixOf(argv); p != nil {
				out = append(out, r.match(p, ""))
			}
		}
	}
	if len(out) > 0 || !resolveHost || !filepath.IsAbs(argv[0]) {
		return out
	}
	base := filepath.Base(argv[0])
	if !rs.hostAllows(base, argv[0], home) {
		return out
	}
	renamed := append([]string{base}, argv[1:]...)
	for _, r := range rulesFor(base) {
		if slices.Contains(r.pattern[0], base) {
			if p := r.prefixOf(renamed); p != nil {
				out = append(out, r.match(p, argv[0]))
			}
		}
	}
	return out
}

// prefixOf returns argv's first len(pattern) words when positions 1… match.
func (r *prefixRule) prefixOf(argv []string) []string {
	if len(argv) < len(r.pattern) {
		return nil
	}
	for i := 1; i < len(r.pattern); i++ {
		if !slices.Contains(r.pattern[i], argv[i]) {
			return nil
		}
	}
	return slices.Clone(argv[:len(r.pattern)])
}

func (r *prefixRule) match(prefix []string, resolved string) RuleMatch {
	return RuleMatch{PrefixRuleMatch{
		MatchedPrefix:   prefix,
		Decision:        codexDecision(r.decision),
		ResolvedProgram: resolved,
		Justification:   r.justification,
	}}
}

// homeDir is the home "~/" host_executable paths mean when checking
// examples and `moat rules check`.
func homeDir() string {
	h, _ := os.UserHomeDir()
	return h
}

// shlexJoin quotes words so a person can paste them into a shell.
func shlexJoin(words []string) string {
	out := make([]string, len(words))
	for i, w := range words {
		if w != "" && strings.Trim(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
			out[i] = w
			continue
		}
		out[i] = "'" + strings.ReplaceAll(w, "'", `'"'"'`) + "'"
	}
	return strings.Join(out, " ")
}
