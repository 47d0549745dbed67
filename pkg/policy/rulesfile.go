package policy

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// fileOptions is the Starlark dialect of rules files. Codex parses them
// with starlark-rust's extended dialect: if and for at top level, globals
// that may be assigned again, f-strings, type annotations and decorators
// (all rewritten before parsing, lines kept; see dialect.go). def, lambda and keyword-only
// parameters are standard in go.starlark.net.
var fileOptions = &syntax.FileOptions{TopLevelControl: true, GlobalReassign: true}

// ruleError is a load error at a position in a rules file.
type ruleError struct {
	pos syntax.Position
	msg string
}

func (e *ruleError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.pos.Filename(), e.pos.Line, e.msg)
}

// pendingExamples are one prefix_rule's match and not_match examples,
// checked once the whole file has run (host_executable entries later in the
// file count, as in Codex).
type pendingExamples struct {
	rule     *prefixRule
	pos      syntax.Position
	match    [][]string
	notMatch [][]string
}

// parseFile runs one rules file and adds what it declares to rs. The
// builtins are Codex's: prefix_rule, host_executable and network_rule, with
// positional or keyword arguments.
func (rs *Ruleset) parseFile(name string, src []byte) error {
	var pending []pendingExamples
	thread := &starlark.Thread{
		Name:  name,
		Print: func(*starlark.Thread, string) {},
		Load: func(*starlark.Thread, string) (starlark.StringDict, error) {
			return nil, errors.New("load() is not available in rules files: put every rule in *.rules files of the rules directory")
		},
	}
	thread.SetMaxExecutionSteps(maxRulesSteps)
	wrap := func(fn string, impl func(pos syntax.Position, args starlark.Tuple, kwargs []starlark.Tuple) error) *starlark.Builtin {
		return starlark.NewBuiltin(fn, func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			pos := th.CallFrame(1).Pos
			if err := impl(pos, args, kwargs); err != nil {
				return nil, &ruleError{pos: pos, msg: err.Error()}
			}
			return starlark.None, nil
		})
	}
	builtins := starlark.StringDict{
		"prefix_rule": wrap("prefix_rule", func(pos syntax.Position, args starlark.Tuple, kwargs []starlark.Tuple) error {
			r, p, err := newPrefixRule(args, kwargs)
			if err != nil {
				return err
			}
			r.source = fmt.Sprintf("%s:%d", name, pos.Line)
			p.rule, p.pos = r, pos
			rs.add(r)
			pending = append(pending, p)
			return nil
		}),
		"host_executable": wrap("host_executable", func(pos syntax.Position, args starlark.Tuple, kwargs []starlark.Tuple) error {
			return rs.hostExecutable(args, kwargs)
		}),
		"network_rule": wrap("network_rule", func(pos syntax.Position, args starlark.Tuple, kwargs []starlark.Tuple) error {
			return rs.networkRule(fmt.Sprintf("%s:%d", name, pos.Line), args, kwargs)
		}),
	}
	_, err := starlark.ExecFileOptions(fileOptions, thread, name, applyDecorators(stripAnnotations(desugarFStrings(src))), builtins)
	if err != nil {
		return locate(name, err)
	}
	for _, p := range pending {
		if err := rs.checkExamples(p); err != nil {
			return &ruleError{pos: p.pos, msg: err.Error()}
		}
	}
	return nil
}

// locate gives an evaluation error the file and line it happened at.
func locate(name string, err error) error {
	var re *ruleError
	var ee *starlark.EvalError
	switch {
	case errors.As(err, &re):
		return re
	case errors.As(err, &ee):
		if len(ee.CallStack) > 0 {
			pos := ee.CallStack.At(0).Pos
			return fmt.Errorf("%s:%d: %s", name, pos.Line, ee.Msg)
		}
		return fmt.Errorf("%s: %s", name, ee.Msg)
	}
	return err // syntax errors carry file:line:col already
}

func newPrefixRule(args starlark.Tuple, kwargs []starlark.Tuple) (*prefixRule, pendingExamples, error) {
	var pattern, match, notMatch starlark.Value
	var decision, justification starlark.Value = starlark.None, starlark.None
	var p pendingExamples
	if err := starlark.UnpackArgs("prefix_rule", args, kwargs,
		"pattern", &pattern, "decision?", &decision, "match?", &match, "not_match?", &notMatch, "justification?", &justification); err != nil {
		return nil, p, err
	}
	r := &prefixRule{decision: allow}
	list, ok := pattern.(*starlark.List)
	if !ok || list.Len() == 0 {
		return nil, p, errors.New("pattern cannot be empty: it is a list of strings or lists of alternatives")
	}
	for i := 0; i < list.Len(); i++ {
		alts, err := alternatives(list.Index(i))
		if err != nil {
			return nil, p, fmt.Errorf("pattern[%d]: %w", i, err)
		}
		r.pattern = append(r.pattern, alts)
	}
	if decision != starlark.None {
		s, ok := starlark.AsString(decision)
		if !ok {
			return nil, p, errors.New(`decision must be "allow", "prompt" or "forbidden"`)
		}
		switch s {
		case "allow":
			r.decision = allow
		case "prompt":
			r.decision = prompt
		case "forbidden", "deny":
			r.decision = deny
		default:
			return nil, p, fmt.Errorf(`invalid decision %q: want "allow", "prompt" or "forbidden"`, s)
		}
	}
	if justification != starlark.None {
		s, ok := starlark.AsString(justification)
		if !ok {
			return nil, p, errors.New("justification must be a string")
		}
		if strings.TrimSpace(s) == "" {
			return nil, p, errors.New("justification cannot be empty")
		}
		r.justification = s
	}
	var err error
	if p.match, err = examples("match", match); err != nil {
		return nil, p, err
	}
	if p.notMatch, err = examples("not_match", notMatch); err != nil {
		return nil, p, err
	}
	return r, p, nil
}

func alternatives(v starlark.Value) ([]string, error) {
	switch x := v.(type) {
	case starlark.String:
		return []string{string(x)}, nil
	case *starlark.List:
		if x.Len() == 0 {
			return nil, errors.New("pattern alternatives cannot be empty")
		}
		var out []string
		for i := 0; i < x.Len(); i++ {
			s, ok := x.Index(i).(starlark.String)
			if !ok {
				return nil, fmt.Errorf("pattern alternative must be a string (got %s)", x.Index(i).Type())
			}
			out = append(out, string(s))
		}
		return out, nil
	}
	return nil, fmt.Errorf("pattern element must be a string or list of strings (got %s)", v.Type())
}

// examples reads match or not_match: strings split as Codex does (shlex,
// no expansion) or lists of strings taken as they are.
func examples(key string, v starlark.Value) ([][]string, error) {
	if v == nil || v == starlark.None {
		return nil, nil
	}
	list, ok := v.(*starlark.List)
	if !ok {
		return nil, fmt.Errorf("%s must be a list of examples (strings or lists of strings)", key)
	}
	var out [][]string
	for i := 0; i < list.Len(); i++ {
		var tokens []string
		switch x := list.Index(i).(type) {
		case starlark.String:
			t, err := shlexSplit(string(x))
			if err != nil {
				return nil, fmt.Errorf("%s[%d] %q: %w", key, i, string(x), err)
			}
			tokens = t
		case *starlark.List:
			for k := 0; k < x.Len(); k++ {
				s, ok := x.Index(k).(starlark.String)
				if !ok {
					return nil, fmt.Errorf("%s[%d]: example tokens must be strings (got %s)", key, i, x.Index(k).Type())
				}
				tokens = append(tokens, string(s))
			}
		default:
			return nil, fmt.Errorf("%s[%d]: an example is a string or a list of strings (got %s)", key, i, x.Type())
		}
		if len(tokens) == 0 {
			return nil, fmt.Errorf("%s[%d]: an example cannot be empty", key, i)
		}
		out = append(out, tokens)
	}
	return out, nil
}

// checkExamples holds a rule to its examples the way Codex does: the
// example must (or must not) match the rule exactly or through a
// host_executable path.
func (rs *Ruleset) checkExamples(p pendingExamples) error {
	for _, ex := range p.notMatch {
		if len(rs.codexMatch(only(p.rule), ex, true, homeDir())) > 0 {
			return fmt.Errorf("not_match example %s matches pattern %s", shlexJoin(ex), p.rule.patternString())
		}
	}
	for _, ex := range p.match {
		if len(rs.codexMatch(only(p.rule), ex, true, homeDir())) == 0 {
			return fmt.Errorf("match example %s does not match pattern %s", shlexJoin(ex), p.rule.patternString())
		}
	}
	return nil
}

// hostExecutable records host_executable(name, paths): the absolute paths
// by which a rule for name may match. The last entry for a name wins.
func (rs *Ruleset) hostExecutable(args starlark.Tuple, kwargs []starlark.Tuple) error {
	var name string
	var paths *starlark.List
	if err := starlark.UnpackArgs("host_executable", args, kwargs, "name", &name, "paths", &paths); err != nil {
		return err
	}
	if name == "" {
		return errors.New("host_executable name cannot be empty")
	}
	if strings.ContainsRune(name, '/') || name == "." || name == ".." {
		return fmt.Errorf("host_executable name must be a bare executable name (got %s)", name)
	}
	var out []string
	for i := 0; i < paths.Len(); i++ {
		raw, ok := paths.Index(i).(starlark.String)
		if !ok {
			return fmt.Errorf("host_executable paths must be strings (got %s)", paths.Index(i).Type())
		}
		p := string(raw)
		switch {
		case strings.HasPrefix(p, "~/"):
			p = "~/" + strings.TrimPrefix(filepath.Clean("/"+p[2:]), "/")
		case filepath.IsAbs(p):
			p = filepath.Clean(p)
		default:
			return fmt.Errorf("host_executable paths must be absolute or use `~/...` home-relative syntax (got %s)", p)
		}
		if filepath.Base(p) != name {
			return fmt.Errorf("host_executable path `%s` must have basename `%s`", string(raw), name)
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	rs.hostExec[name] = out
	return nil
}

// networkRule records network_rule(host, protocol, decision, justification).
func (rs *Ruleset) networkRule(source string, args starlark.Tuple, kwargs []starlark.Tuple) error {
	var host, protocol, decision string
	var justification starlark.Value = starlark.None
	if err := starlark.UnpackArgs("network_rule", args, kwargs,
		"host", &host, "protocol", &protocol, "decision", &decision, "justification?", &justification); err != nil {
		return err
	}
	nr := NetworkRule{Source: source}
	switch protocol {
	case "http":
		nr.Protocol = "http"
	case "https", "https_connect", "http-connect":
		nr.Protocol = "https"
	case "socks5_tcp", "socks5_udp":
		nr.Protocol = protocol
	default:
		return fmt.Errorf("network_rule protocol must be one of http, https, socks5_tcp, socks5_udp (got %s)", protocol)
	}
	switch decision {
	case "allow", "prompt", "forbidden":
		nr.Decision = decision
	case "deny":
		nr.Decision = "forbidden"
	default:
		return fmt.Errorf(`invalid decision %q: want "allow", "prompt", "forbidden" or "deny"`, decision)
	}
	if justification != starlark.None {
		s, ok := starlark.AsString(justification)
		if !ok || strings.TrimSpace(s) == "" {
			return errors.New("justification cannot be empty")
		}
		nr.Justification = s
	}
	h, err := normalizeNetworkHost(host)
	if err != nil {
		return err
	}
	nr.Host = h
	rs.network = append(rs.network, nr)
	switch {
	case nr.Protocol == "socks5_udp" && nr.Decision == "allow":
		rs.notices = append(rs.notices, fmt.Sprintf("%s: network_rule allows %s over socks5_udp: moat's egress proxy carries no UDP, so it admits nothing", source, h))
	case nr.Decision == "allow":
		rs.notices = append(rs.notices, fmt.Sprintf("%s: network_rule allows %s (%s): added to the egress allowlist of runs whose profile has one; it never gives network to an offline profile", source, h, nr.Protocol))
	}
	return nil
}

// normalizeNetworkHost accepts a host name or IP literal, with an optional
// port, as Codex does: no scheme, path or wildcard.
func normalizeNetworkHost(raw string) (string, error) {
	h := strings.TrimSpace(raw)
	switch {
	case h == "":
		return "", errors.New("network_rule host cannot be empty")
	case strings.ContainsAny(h, "/?#"):
		return "", errors.New("network_rule host must be a hostname or IP literal (without scheme or path)")
	}
	if strings.HasPrefix(h, "[") {
		inside, rest, ok := strings.Cut(h[1:], "]")
		port, hasPort := strings.CutPrefix(rest, ":")
		if !ok || (rest != "" && (!hasPort || port == "" || strings.Trim(port, "0123456789") != "")) {
			return "", fmt.Errorf("network_rule host has an invalid bracketed IPv6 literal or suffix: %s", raw)
		}
		h = inside
	} else if strings.Count(h, ":") == 1 {
		if name, port, _ := strings.Cut(h, ":"); name != "" && port != "" && strings.Trim(port, "0123456789") == "" {
			h = name
		}
	}
	h = strings.ToLower(strings.TrimSpace(strings.TrimRight(h, ".")))
	switch {
	case h == "":
		return "", errors.New("network_rule host cannot be empty")
	case strings.Contains(h, "*"):
		return "", errors.New("network_rule host must be a specific host; wildcards are not allowed")
	case strings.ContainsAny(h, " \t\r\n"):
		return "", errors.New("network_rule host cannot contain whitespace")
	}
	return h, nil
}

// only offers one rule for any first token: examples are held to their
// own rule.
func only(r *prefixRule) func(string) []*prefixRule {
	return func(string) []*prefixRule { return []*prefixRule{r} }
}
