package policy

import (
	"bytes"
	"path"
	"strings"
	"sync"

	"github.com/moatsec/moat/pkg/truncate"
	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

// stdin is what a command reads on standard input, when the script says.
type stdin struct {
	present   bool   // a here-doc, here-string or pipe feeds it
	piped     bool   // a pipe
	text      string // its content, when known
	known     bool
	fetchedBy string // an earlier pipeline stage that downloads
}

var parsers = sync.Pool{New: func() any { return syntax.NewParser(syntax.Variant(syntax.LangBash)) }}

// script parses src as a bash script and judges every command in it.
func (j *judge) script(src, dir string) {
	if j.depth >= maxDepth {
		j.add(prompt, "shell.too-deep", "", "scripts nested more than %d deep cannot be judged", maxDepth)
		return
	}
	if n := opens(src); n > maxOpens {
		j.add(prompt, "shell.too-deep", "", "the script opens %d brackets, past the %d that can be judged", n, maxOpens)
		return
	}
	p := parsers.Get().(*syntax.Parser)
	f, err := p.Parse(strings.NewReader(src), "")
	parsers.Put(p)
	if err != nil {
		j.add(prompt, "shell.parse-error", "", "the script does not parse (%v), so what it runs is unknown", err)
		return
	}
	j.depth++
	j.srcs = append(j.srcs, src)
	defer func() { j.depth--; j.srcs = j.srcs[:len(j.srcs)-1] }()
	j.file(f, dir)
}

// maxOpens bounds the brackets a script may hold before it is parsed: the
// parser recurses once or more per level of nesting, and a script of a few
// hundred KiB nested all the way down overflows any stack (a fatal error,
// past every recover). Nesting is no deeper than the count of '(', '{' and
// '`' in the script, quoted or not: a count no quoting, escape or closing
// bracket (a case pattern's closes nothing) can hide anything from.
const maxOpens = 4096

// opens counts the bytes of src that may open a level of nesting.
func opens(src string) int {
	return strings.Count(src, "(") + strings.Count(src, "{") + strings.Count(src, "`")
}

// maxWork bounds the bytes of words a judgement takes in (wordArg, argsOf):
// a word is walked again at every level it is nested in, so a script nested
// deep costs far more than its length (reaching 16 MiB took about a quarter
// of a second here). Past it, the rest is not judged and the command is a
// prompt. The bus's largest flat script is a thirtieth of it.
const maxWork = 16 << 20

// spent counts w's bytes against maxWork; true once over it (the prompt
// is added once).
func (j *judge) spent(w *syntax.Word) bool {
	if j.work > maxWork {
		return true
	}
	if j.work += int(w.End().Offset() - w.Pos().Offset()); j.work > maxWork {
		j.add(prompt, "shell.too-deep", "", "the script is too large for how deep it nests to be judged in time")
		return true
	}
	return false
}

// scriptArg judges a script given as an argument (bash -c, su -c, eval).
func (j *judge) scriptArg(a arg, dir string) {
	switch {
	case a.fetches:
		j.add(deny, "exec.remote-code", "", "runs a script downloaded at run time (%s)", short(a.s))
	case a.dyn:
		j.add(prompt, "shell.dynamic-script", "", "runs a script only known at run time (%s)", short(a.s))
	default:
		j.script(a.s, dir)
	}
}

// file judges a parsed script. Commands are visited in source order, so a
// `cd` is seen before the commands after it.
func (j *judge) file(f *syntax.File, dir string) {
	sc := &scope{dirs: []string{dir}}
	syntax.Walk(f, func(n syntax.Node) bool {
		if j.work > maxWork {
			return false
		}
		switch n := n.(type) {
		case *syntax.Stmt:
			j.stmt(n, sc)
		case *syntax.BinaryCmd:
			if n.Op == syntax.Pipe || n.Op == syntax.PipeAll {
				j.pipeline(flatten(n), sc)
			}
		case *syntax.FuncDecl:
			j.funcDecl(n)
		}
		return true
	})
}

// scope tracks where relative paths of a script may point after its cd
// commands: every directory it may be in, or unknown.
type scope struct {
	dirs    []string
	unknown bool
}

func (sc *scope) dir() string { return sc.dirs[len(sc.dirs)-1] }

func (j *judge) stmt(s *syntax.Stmt, sc *scope) {
	in := j.pipeIn[s]
	for _, r := range s.Redirs {
		switch r.Op {
		case syntax.RdrOut, syntax.AppOut, syntax.RdrClob, syntax.AppClob, syntax.RdrAll,
			syntax.RdrAllClob, syntax.AppAll, syntax.AppAllClob, syntax.RdrInOut:
			j.writeAll("a redirect", j.wordArg(r.Word), sc)
		case syntax.DplOut, syntax.DplIn:
			if a := j.wordArg(r.Word); a.dyn || strings.Trim(a.s, "0123456789-") != "" {
				if r.Op == syntax.DplOut {
					j.writeAll("a redirect", a, sc)
				}
			}
		case syntax.RdrIn:
			j.readDeniedArg(j.wordArg(r.Word), sc.dir())
		case syntax.Hdoc, syntax.DashHdoc:
			in = stdin{present: true}
			if r.Hdoc != nil {
				if t, ok := j.literal(r.Hdoc); ok {
					in.text, in.known = t, true
				}
			} else {
				in.known = true
			}
		case syntax.WordHdoc:
			in = stdin{present: true}
			if a := j.wordArg(r.Word); !a.dyn {
				in.text, in.known = a.s, true
			}
		}
	}
	if decl, ok := s.Cmd.(*syntax.DeclClause); ok { // export, declare, local, readonly
		j.assigns(decl.Args, sc)
		return
	}
	call, ok := s.Cmd.(*syntax.CallExpr)
	if !ok {
		return
	}
	j.assigns(call.Assigns, sc)
	if len(call.Args) == 0 {
		return
	}
	args := j.argsOf(call.Args, sc.dir())
	if len(args) > 0 && !args[0].dyn && (args[0].s == "cd" || args[0].s == "pushd" || args[0].s == "popd") {
		j.cd(args, sc)
		return
	}
	dirs := sc.dirs
	if sc.unknown {
		dirs = dirs[:1]
	}
	for _, d := range dirs {
		j.command(args, d, in)
	}
}

// assigns judges variables that make programs run commands or load code.
func (j *judge) assigns(as []*syntax.Assign, sc *scope) {
	for _, a := range as {
		if a.Name == nil || a.Value == nil {
			continue
		}
		if n := a.Name.Value; judgedVar(n) {
			j.envAssign(n, j.wordArg(a.Value), sc.dir())
		}
	}
}

// cd records where later relative paths may point.
func (j *judge) cd(args []arg, sc *scope) {
	j.add(allow, "safe.read-only", "", "%s only changes directory", args[0].s)
	ops := operands(args, "")
	if args[0].s == "popd" || (len(ops) > 0 && (ops[0].dyn || ops[0].s == "-")) {
		sc.unknown = true
		return
	}
	target := j.home
	if len(ops) > 0 {
		target = ops[0].s
	}
	if len(sc.dirs) < 16 {
		sc.dirs = append(sc.dirs, j.abs(target, sc.dir()))
	}
}

// writeAll judges a write to target from every directory the script may be in.
func (j *judge) writeAll(what string, target arg, sc *scope) {
	if sc.unknown && !target.dyn && !strings.HasPrefix(target.s, "/") {
		j.add(prompt, "fs.write-unknown", "", "%s writes %s relative to a directory only known at run time", what, target.s)
		return
	}
	for _, d := range sc.dirs {
		j.write(what, target, d)
	}
}

// pipeline works out what each stage reads from the one before: downloaded
// data (an earlier stage fetches), known text (echo of static words), or
// data only known at run time. The stages judge it as their stdin.
func (j *judge) pipeline(stages []*syntax.Stmt, sc *scope) {
	fetched := ""
	echoed, echoKnown := "", false
	for k, st := range stages {
		if k > 0 {
			if j.pipeIn == nil {
				j.pipeIn = map[*syntax.Stmt]stdin{}
			}
			j.pipeIn[st] = stdin{present: true, piped: true, text: echoed, known: echoKnown && fetched == "", fetchedBy: fetched}
		}
		echoKnown = false
		call, ok := st.Cmd.(*syntax.CallExpr)
		if !ok || len(call.Args) == 0 {
			continue
		}
		args, _ := j.quietUnwrap(j.argsOf(call.Args, sc.dir()), sc.dir())
		if len(args) == 0 || args[0].dyn {
			continue
		}
		name := path.Base(args[0].s)
		if downloaders[name] {
			fetched = name
		}
		echoed, echoKnown = echoText(name, args)
		if name == "cat" && len(args) == 1 {
			// cat <<EOF | sh: the here-document is the script
			for _, r := range st.Redirs {
				if (r.Op == syntax.Hdoc || r.Op == syntax.DashHdoc) && r.Hdoc != nil {
					echoed, echoKnown = j.literal(r.Hdoc)
				}
			}
		}
	}
}

// fromStdin judges a shell or interpreter that runs what it reads on stdin.
func (j *judge) fromStdin(name string, in stdin, dir string, asScript bool) {
	switch {
	case in.fetchedBy != "":
		j.add(deny, "exec.remote-code", "", "pipes what %s downloads into %s: downloaded code never runs", in.fetchedBy, name)
	case in.known && asScript:
		j.script(in.text, dir)
	case in.known:
		j.add(prompt, "exec.inline-code", "", "%s runs code from its input a person should read first: %s", name, short(in.text))
	case in.piped:
		j.add(prompt, "exec.piped-shell", "", "pipes data into %s, so what it runs is only known at run time", name)
	default:
		j.add(prompt, "exec.piped-shell", "", "%s runs a here-document only known at run time", name)
	}
}

// quietUnwrap unwraps launchers without recording findings (the stage is
// judged on its own as a statement).
func (j *judge) quietUnwrap(args []arg, dir string) ([]arg, string) {
	saved := *j
	saved.reasons, saved.sevs, saved.seen = nil, nil, map[string]bool{}
	out, d := saved.unwrap(args, dir)
	return out, d
}

func flatten(b *syntax.BinaryCmd) []*syntax.Stmt {
	var out []*syntax.Stmt
	for _, s := range []*syntax.Stmt{b.X, b.Y} {
		if inner, ok := s.Cmd.(*syntax.BinaryCmd); ok && (inner.Op == syntax.Pipe || inner.Op == syntax.PipeAll) && len(s.Redirs) == 0 {
			out = append(out, flatten(inner)...)
		} else {
			out = append(out, s)
		}
	}
	return out
}

// funcDecl denies a function that calls itself in a pipeline or in the
// background: a fork bomb, :(){ :|:& };: and its renamings.
func (j *judge) funcDecl(f *syntax.FuncDecl) {
	if f.Name == nil || f.Body == nil {
		return
	}
	name := f.Name.Value
	self, concurrent := false, false
	syntax.Walk(f.Body, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.CallExpr:
			if len(n.Args) > 0 && n.Args[0].Lit() == name {
				self = true
			}
		case *syntax.BinaryCmd:
			if n.Op == syntax.Pipe || n.Op == syntax.PipeAll {
				concurrent = true
			}
		case *syntax.Stmt:
			if n.Background {
				concurrent = true
			}
		}
		return true
	})
	if self && concurrent {
		j.add(deny, "destructive.fork-bomb", "", "function %s calls itself in a pipeline or in the background: a fork bomb", name)
	}
}

// argsOf turns words into args: static words are expanded as the shell would
// (quotes removed, braces expanded, ~ and $HOME known); others stay dynamic.
// A call's words are worked out once, however often it is judged.
func (j *judge) argsOf(ws []*syntax.Word, dir string) []arg {
	if len(ws) > 0 {
		if cached, ok := j.words[ws[0]]; ok && cached.dir == dir {
			return cached.args
		}
	}
	var out []arg
	for _, w := range ws {
		if s, ok := plainWord(w); ok {
			out = append(out, arg{s: s})
			continue
		}
		if j.spent(w) {
			out = append(out, arg{dyn: true})
			continue
		}
		fetches := fetchesIn(w)
		if isStatic(w) {
			if fields, err := expand.Fields(j.expandCfg(dir), w); err == nil {
				for _, f := range fields {
					out = append(out, arg{s: f, fetches: fetches})
				}
				continue
			}
		}
		out = append(out, arg{s: j.text(w), dyn: true, fetches: fetches})
	}
	if len(ws) > 0 {
		if j.words == nil {
			j.words = map[*syntax.Word]wordsAt{}
		}
		j.words[ws[0]] = wordsAt{dir: dir, args: out}
	}
	return out
}

type wordsAt struct {
	dir  string
	args []arg
}

// plainWord is the fast path: a bare literal or a single-quoted string that
// no expansion changes.
func plainWord(w *syntax.Word) (string, bool) {
	if len(w.Parts) != 1 {
		return "", false
	}
	switch p := w.Parts[0].(type) {
	case *syntax.Lit:
		if strings.ContainsAny(p.Value, "\\{~*?[") {
			return "", false
		}
		return p.Value, true
	case *syntax.SglQuoted:
		if p.Dollar {
			return "", false
		}
		return p.Value, true
	}
	return "", false
}

// wordArg is one word as a single arg (redirect targets are not split).
func (j *judge) wordArg(w *syntax.Word) arg {
	if w == nil || j.spent(w) {
		return arg{s: "", dyn: true}
	}
	if s, ok := j.literal(w); ok {
		return arg{s: s, fetches: fetchesIn(w)}
	}
	return arg{s: j.text(w), dyn: true, fetches: fetchesIn(w)}
}

// text is w as written: its span of the script being judged. Printing it
// instead costs as much again at every level it is nested in, and the
// printer indents each nested line by its depth.
func (j *judge) text(w *syntax.Word) string {
	if n := len(j.srcs); n > 0 {
		src, from, to := j.srcs[n-1], int(w.Pos().Offset()), int(w.End().Offset())
		if from <= to && to <= len(src) {
			return src[from:to]
		}
	}
	return printWord(w)
}

func (j *judge) literal(w *syntax.Word) (string, bool) {
	if !isStatic(w) {
		return "", false
	}
	s, err := expand.Literal(j.expandCfg(j.in.Cwd), w)
	return s, err == nil
}

func (j *judge) expandCfg(dir string) *expand.Config {
	if j.cfg == nil || j.cfgDir != dir {
		j.cfg, j.cfgDir = &expand.Config{Env: expand.ListEnviron("HOME="+j.home, "PWD="+dir)}, dir
	}
	return j.cfg
}

// fieldsOf splits a static string as the shell would (env -S).
func (j *judge) fieldsOf(a arg) []arg {
	if a.dyn {
		return []arg{a}
	}
	if opens(a.s) > maxOpens {
		return []arg{{s: a.s, dyn: true}}
	}
	p := parsers.Get().(*syntax.Parser)
	defer parsers.Put(p)
	var ws []*syntax.Word
	for w, err := range p.WordsSeq(strings.NewReader(a.s)) {
		if err != nil {
			return []arg{{s: a.s, dyn: true}}
		}
		ws = append(ws, w)
	}
	j.srcs = append(j.srcs, a.s) // the words' offsets are in a.s
	defer func() { j.srcs = j.srcs[:len(j.srcs)-1] }()
	return j.argsOf(ws, j.in.Cwd)
}

// isStatic reports whether a word's value is known without running anything:
// literals, quotes, and the simple expansions $HOME and $PWD.
func isStatic(w *syntax.Word) bool {
	for _, part := range w.Parts {
		if !staticPart(part) {
			return false
		}
	}
	return true
}

func staticPart(part syntax.WordPart) bool {
	switch p := part.(type) {
	case *syntax.Lit, *syntax.SglQuoted:
		return true
	case *syntax.DblQuoted:
		for _, q := range p.Parts {
			if !staticPart(q) {
				return false
			}
		}
		return true
	case *syntax.ParamExp:
		return p.Param != nil && (p.Param.Value == "HOME" || p.Param.Value == "PWD") && p.Exp == nil &&
			p.Repl == nil && p.Slice == nil && p.Index == nil && !p.Excl && !p.Length && p.Names == 0
	}
	return false
}

// fetchesIn reports whether a substitution inside w downloads something.
func fetchesIn(w *syntax.Word) bool {
	if !hasSubst(w.Parts) {
		return false
	}
	found := false
	syntax.Walk(w, func(n syntax.Node) bool {
		if c, ok := n.(*syntax.CallExpr); ok && len(c.Args) > 0 {
			if downloaders[path.Base(c.Args[0].Lit())] {
				found = true
			}
		}
		return !found
	})
	return found
}

func hasSubst(parts []syntax.WordPart) bool {
	for _, p := range parts {
		switch p := p.(type) {
		case *syntax.CmdSubst, *syntax.ProcSubst:
			return true
		case *syntax.DblQuoted:
			if hasSubst(p.Parts) {
				return true
			}
		case *syntax.ParamExp:
			return true // ${x:-$(curl …)}
		}
	}
	return false
}

func printWord(w *syntax.Word) string {
	var b bytes.Buffer
	syntax.NewPrinter().Print(&b, w)
	return b.String()
}

// echoText is what echo or printf with static words writes, for judging a
// pipe into a shell (echo "rm -rf /" | sh).
func echoText(name string, args []arg) (string, bool) {
	if (name != "echo" && name != "printf") || anyDyn(args) {
		return "", false
	}
	ops := args[1:]
	for len(ops) > 0 && strings.HasPrefix(ops[0].s, "-") && name == "echo" {
		ops = ops[1:]
	}
	return words(ops), true
}

func short(s string) string { return truncate.String(s, 80) }
