package policy

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/moatsec/moat/pkg/wire"
	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

// maxDepth bounds nested scripts (bash -c "eval '…'"): deeper is a prompt.
const maxDepth = 8

// arg is one word of a command: its value when static, its source text when
// only known at run time.
type arg struct {
	s       string
	dyn     bool
	fetches bool // a substitution in it downloads (curl, wget, …)
}

func statics(ss []string) []arg {
	out := make([]arg, len(ss))
	for i, s := range ss {
		out[i] = arg{s: s}
	}
	return out
}

func (a arg) String() string { return a.s }

// judge accumulates the verdict of one request.
type judge struct {
	e       *Engine
	rs      *Ruleset
	in      *Input
	home    string
	verdict severity
	reasons []wire.Reason
	sevs    []severity // the verdict of each reason
	seen    map[string]bool
	hits    int // reasons added, duplicates included: did a rule speak?
	depth   int
	work    int                    // bytes of words taken in (spent)
	srcs    []string               // the scripts being judged, innermost last (text)
	pipeIn  map[*syntax.Stmt]stdin // what pipeline stages read
	words   map[*syntax.Word]wordsAt
	cfg     *expand.Config
	cfgDir  string
}

// add records a finding; the strictest verdict wins.
func (j *judge) add(s severity, rule, source, format string, args ...any) {
	j.hits++
	if s > j.verdict {
		j.verdict = s
	}
	msg := fmt.Sprintf(format, args...)
	key := rule + "\x00" + msg
	if j.seen[key] {
		return
	}
	j.seen[key] = true
	j.reasons = append(j.reasons, wire.Reason{Rule: rule, Message: msg, Source: source})
	j.sevs = append(j.sevs, s)
}

// sorted returns the reasons strictest first, in the order found within a verdict.
func (j *judge) sorted() []wire.Reason {
	out := make([]wire.Reason, 0, len(j.reasons))
	for s := deny; s >= allow; s-- {
		for i, r := range j.reasons {
			if j.sevs[i] == s {
				out = append(out, r)
			}
		}
	}
	return out
}

// command judges one simple command: args after redirections were taken
// apart, in the directory dir, with what its standard input is.
func (j *judge) command(args []arg, dir string, in stdin) {
	if len(args) == 0 {
		return
	}
	before := j.hits
	args, dir = j.unwrap(args, dir)
	if len(args) == 0 {
		if j.hits == before {
			j.add(allow, "safe.read-only", "", "only sets up the environment")
		}
		return
	}
	prog := args[0]
	if prog.dyn {
		j.add(prompt, "shell.dynamic-command", "", "the program %s is only known at run time", prog.s)
		return
	}
	name := path.Base(prog.s)
	j.fileRules(args, name)
	j.readDenied(args, dir)
	if h, ok := handlers[name]; ok {
		h(j, name, args, dir, in)
	} else if h := familyHandler(name); h != nil {
		h(j, name, args, dir, in)
	}
	if j.hits == before {
		j.unknown(name)
	}
}

func (j *judge) unknown(name string) {
	if j.e.opts.Unknown == wire.VerdictPrompt {
		j.add(prompt, "default.unknown", "", "no rule names %s; policyd asks for commands it does not know", name)
		return
	}
	j.add(allow, wire.ReasonSandboxed, "", "no rule names %s; it runs confined by profile %s", name, j.in.Profile.Name)
}

// hasFlag reports whether a short flag letter or a long option is present
// before "--".
func hasFlag(args []arg, short string, long ...string) bool {
	for _, a := range args[1:] {
		if a.dyn {
			continue
		}
		if a.s == "--" {
			return false
		}
		if strings.HasPrefix(a.s, "--") {
			name, _, _ := strings.Cut(a.s[2:], "=")
			if slices.Contains(long, name) {
				return true
			}
			continue
		}
		if len(a.s) > 1 && a.s[0] == '-' && strings.ContainsAny(a.s[1:], short) && short != "" {
			return true
		}
	}
	return false
}

func words(args []arg) string {
	parts := make([]string, len(args))
	for i, a := range args {
		parts[i] = a.s
	}
	return strings.Join(parts, " ")
}
