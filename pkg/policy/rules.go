package policy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
	"mvdan.cc/sh/v3/shell"
)

// Limits on rules files: a hostile or broken file must not hang policyd.
const (
	maxRulesFileBytes = 4 << 20
	maxRulesSteps     = 5_000_000
)

// Ruleset is a set of prefix rules loaded from files, indexed by the first
// token of their pattern. It is immutable once loaded.
type Ruleset struct {
	byFirst map[string][]*prefixRule
	files   []string
	count   int
}

type prefixRule struct {
	pattern       [][]string // alternatives at each position
	decision      severity
	justification string
	source        string // file:line
}

// Files are the files the ruleset came from.
func (rs *Ruleset) Files() []string { return rs.files }

// Len is how many rules it holds.
func (rs *Ruleset) Len() int { return rs.count }

// LoadRules reads every *.rules file in the given files and directories (a
// missing directory is empty). Any error — a syntax error, a bad argument, an
// example that does not behave — names the file and line; nothing is loaded.
func LoadRules(paths ...string) (*Ruleset, error) {
	rs := &Ruleset{byFirst: map[string][]*prefixRule{}}
	var files []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			files = append(files, p)
			continue
		}
		matches, err := filepath.Glob(filepath.Join(p, "*.rules"))
		if err != nil {
			return nil, err
		}
		sort.Strings(matches)
		files = append(files, matches...)
	}
	for _, f := range files {
		data, err := readLimited(f)
		if err != nil {
			return nil, err
		}
		rules, err := ParseRules(f, data)
		if err != nil {
			return nil, err
		}
		for _, r := range rules {
			rs.add(r)
		}
		rs.files = append(rs.files, f)
	}
	return rs, nil
}

func readLimited(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxRulesFileBytes {
		return nil, fmt.Errorf("%s: %d bytes is over the %d-byte limit for a rules file", path, fi.Size(), maxRulesFileBytes)
	}
	return os.ReadFile(path)
}

func (rs *Ruleset) add(r *prefixRule) {
	for _, first := range r.pattern[0] {
		rs.byFirst[first] = append(rs.byFirst[first], r)
	}
	rs.count++
}

// ruleError is a load error at a position in a rules file.
type ruleError struct {
	pos syntax.Position
	msg string
}

func (e *ruleError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.pos.Filename(), e.pos.Line, e.msg)
}

// ParseRules runs one rules file in Codex's execpolicy format: Starlark whose
// prefix_rule(pattern, decision, justification, match, not_match) calls
// declare rules. Examples in match and not_match are checked here.
func ParseRules(name string, src []byte) ([]*prefixRule, error) {
	var rules []*prefixRule
	thread := &starlark.Thread{
		Name:  name,
		Print: func(*starlark.Thread, string) {},
		Load: func(*starlark.Thread, string) (starlark.StringDict, error) {
			return nil, errors.New("load() is not available in rules files")
		},
	}
	thread.SetMaxExecutionSteps(maxRulesSteps)
	builtin := starlark.NewBuiltin("prefix_rule", func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		pos := th.CallFrame(1).Pos
		r, err := newPrefixRule(args, kwargs)
		if err != nil {
			return nil, &ruleError{pos: pos, msg: err.Error()}
		}
		r.source = fmt.Sprintf("%s:%d", name, pos.Line)
		rules = append(rules, r)
		return starlark.None, nil
	})
	_, err := starlark.ExecFileOptions(&syntax.FileOptions{}, thread, name, src, starlark.StringDict{"prefix_rule": builtin})
	if err != nil {
		var re *ruleError
		var ee *starlark.EvalError
		switch {
		case errors.As(err, &re):
			return nil, re
		case errors.As(err, &ee):
			if len(ee.CallStack) > 0 {
				pos := ee.CallStack.At(0).Pos
				return nil, fmt.Errorf("%s:%d: %s", name, pos.Line, ee.Msg)
			}
			return nil, fmt.Errorf("%s: %s", name, ee.Msg)
		}
		return nil, err // syntax errors carry file:line:col already
	}
	return rules, nil
}

func newPrefixRule(args starlark.Tuple, kwargs []starlark.Tuple) (*prefixRule, error) {
	if len(args) > 0 {
		return nil, errors.New("prefix_rule takes keyword arguments only (pattern=…, decision=…)")
	}
	r := &prefixRule{decision: allow}
	var match, notMatch *starlark.List
	for _, kv := range kwargs {
		key := string(kv[0].(starlark.String))
		v := kv[1]
		switch key {
		case "pattern":
			list, ok := v.(*starlark.List)
			if !ok || list.Len() == 0 {
				return nil, errors.New("pattern must be a non-empty list of strings or lists of strings")
			}
			for i := 0; i < list.Len(); i++ {
				alts, err := alternatives(list.Index(i))
				if err != nil {
					return nil, fmt.Errorf("pattern[%d]: %w", i, err)
				}
				r.pattern = append(r.pattern, alts)
			}
		case "decision":
			s, ok := v.(starlark.String)
			if !ok {
				return nil, errors.New("decision must be \"allow\", \"prompt\" or \"forbidden\"")
			}
			switch string(s) {
			case "allow":
				r.decision = allow
			case "prompt":
				r.decision = prompt
			case "forbidden", "deny":
				r.decision = deny
			default:
				return nil, fmt.Errorf("decision %q: want \"allow\", \"prompt\" or \"forbidden\"", string(s))
			}
		case "justification":
			s, ok := v.(starlark.String)
			if !ok {
				return nil, errors.New("justification must be a string")
			}
			r.justification = string(s)
		case "match", "not_match":
			list, ok := v.(*starlark.List)
			if !ok {
				return nil, fmt.Errorf("%s must be a list of examples (strings or lists of strings)", key)
			}
			if key == "match" {
				match = list
			} else {
				notMatch = list
			}
		default:
			return nil, fmt.Errorf("unknown argument %q (prefix_rule takes pattern, decision, justification, match, not_match)", key)
		}
	}
	if r.pattern == nil {
		return nil, errors.New("pattern is required")
	}
	if err := r.checkExamples(match, true); err != nil {
		return nil, err
	}
	if err := r.checkExamples(notMatch, false); err != nil {
		return nil, err
	}
	return r, nil
}

func alternatives(v starlark.Value) ([]string, error) {
	switch x := v.(type) {
	case starlark.String:
		return []string{string(x)}, nil
	case *starlark.List:
		if x.Len() == 0 {
			return nil, errors.New("an empty list of alternatives matches nothing")
		}
		var out []string
		for i := 0; i < x.Len(); i++ {
			s, ok := x.Index(i).(starlark.String)
			if !ok {
				return nil, errors.New("alternatives must be strings")
			}
			out = append(out, string(s))
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a string or a list of strings, not %s", v.Type())
}

func (r *prefixRule) checkExamples(list *starlark.List, want bool) error {
	if list == nil {
		return nil
	}
	for i := 0; i < list.Len(); i++ {
		tokens, shown, err := exampleTokens(list.Index(i))
		if err != nil {
			return fmt.Errorf("example %d: %w", i, err)
		}
		if got := r.matches(statics(tokens), baseName(first(tokens))); got != want {
			if want {
				return fmt.Errorf("match example %s does not match pattern %s", shown, r.patternString())
			}
			return fmt.Errorf("not_match example %s matches pattern %s", shown, r.patternString())
		}
	}
	return nil
}

func exampleTokens(v starlark.Value) ([]string, string, error) {
	switch x := v.(type) {
	case starlark.String:
		tokens, err := shell.Fields(string(x), func(string) string { return "" })
		if err != nil {
			return nil, "", fmt.Errorf("%q does not split into words: %v", string(x), err)
		}
		return tokens, fmt.Sprintf("%q", string(x)), nil
	case *starlark.List:
		alts, err := alternatives(x)
		return alts, x.String(), err
	}
	return nil, "", fmt.Errorf("an example is a string or a list of strings, not %s", v.Type())
}

func first(l []string) string {
	if len(l) == 0 {
		return ""
	}
	return l[0]
}

// matches reports whether argv starts with the pattern. argv[0] also
// matches by its base name (/usr/bin/git is git). A token only known at run
// time matches any position of a prompt or forbidden rule (it could be
// anything) and no position of an allow rule.
func (r *prefixRule) matches(argv []arg, name string) bool {
	if len(argv) < len(r.pattern) {
		return false
	}
	for i, alts := range r.pattern {
		a := argv[i]
		if a.dyn {
			if r.decision == allow {
				return false
			}
			continue
		}
		ok := false
		for _, alt := range alts {
			if a.s == alt || (i == 0 && name == alt) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func (r *prefixRule) patternString() string {
	parts := make([]string, len(r.pattern))
	for i, alts := range r.pattern {
		if len(alts) == 1 {
			parts[i] = fmt.Sprintf("%q", alts[0])
		} else {
			parts[i] = "[" + strings.Join(quoteAll(alts), ", ") + "]"
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func quoteAll(l []string) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// fileRules applies the ruleset to one command.
func (j *judge) fileRules(args []arg, name string) {
	if j.rs == nil {
		return
	}
	cands := j.rs.byFirst[name]
	if !args[0].dyn && args[0].s != name {
		cands = append(cands[:len(cands):len(cands)], j.rs.byFirst[args[0].s]...)
	}
	for _, r := range cands {
		if !r.matches(args, name) {
			continue
		}
		msg := r.justification
		if msg == "" {
			msg = fmt.Sprintf("matches prefix_rule %s (decision %s)", r.patternString(), r.decision)
		}
		j.add(r.decision, "file.prefix-rule", r.source, "%s", msg)
	}
}
