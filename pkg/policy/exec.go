package policy

import (
	"slices"
	"strings"

	"github.com/moatsec/moat/pkg/wire"
)

var shells = []string{"bash", "sh", "zsh", "dash", "ksh", "mksh", "ash", "yash", "posh", "rbash", "fish", "csh", "tcsh"}

// inlineFlags maps interpreters to the short options that take inline code.
var inlineFlags = map[string]string{
	"perl": "eE", "ruby": "e", "node": "ep", "nodejs": "ep", "php": "r", "lua": "e", "luajit": "e",
	"Rscript": "e", "osascript": "e", "bun": "e", "tclsh": "", "jshell": "", "irb": "", "pwsh": "c", "powershell": "c",
}

// inlineLong are long options that take inline code.
var inlineLong = []string{"eval", "print", "command", "exec"}

// shellCmd judges a shell: the -c script is parsed and judged; a script file
// runs confined; a here-doc on stdin is parsed too.
func shellCmd(j *judge, name string, args []arg, dir string, in stdin) {
	i, dashC := 1, false
	for ; i < len(args); i++ {
		a := args[i]
		if a.dyn {
			break
		}
		s := a.s
		if s == "--" || s == "-" {
			i++
			break
		}
		if strings.HasPrefix(s, "--") {
			if s == "--rcfile" || s == "--init-file" {
				i++
			}
			continue
		}
		if len(s) > 1 && (s[0] == '-' || s[0] == '+') {
			if strings.ContainsAny(s[1:], "oO") {
				i++
			}
			if s[0] == '-' && strings.ContainsRune(s[1:], 'c') {
				dashC = true
			}
			continue
		}
		break
	}
	switch {
	case dashC && i < len(args):
		if name == "fish" || name == "csh" || name == "tcsh" {
			j.add(prompt, "shell.dynamic-script", "", "%s scripts are not bash: what %s -c runs cannot be judged", name, name)
			return
		}
		j.scriptArg(args[i], dir)
	case dashC:
		j.add(allow, "safe.read-only", "", "%s -c without a script does nothing", name)
	case i < len(args) && args[i].fetches:
		j.add(deny, "exec.remote-code", "", "%s runs a script downloaded at run time (%s)", name, short(args[i].s))
	case i < len(args) && args[i].dyn:
		j.add(prompt, "shell.dynamic-script", "", "%s runs a script only known at run time (%s)", name, short(args[i].s))
	case i < len(args):
		j.add(allow, wire.ReasonSandboxed, "", "%s runs the script file %s, confined by profile %s", name, args[i].s, j.in.Profile.Name)
	case in.present:
		j.fromStdin(name, in, dir, true)
	default:
		j.add(allow, wire.ReasonSandboxed, "", "an interactive %s, confined by profile %s", name, j.in.Profile.Name)
	}
}

// executesStdin reports whether a command runs what it reads on stdin as code.
func executesStdin(name string, args []arg) bool {
	for _, s := range shells {
		if s == name {
			rest := skipOptions(args, "oO", "rcfile", "init-file")
			return !hasFlag(args, "c") && (len(rest) == 0 || rest[0].s == "-" || hasFlag(args, "s"))
		}
	}
	if pythonName.MatchString(name) || inlineFlags[name] != "" || name == "perl" {
		rest := skipOptions(args, "WXmQ")
		if inlineFlags[name] != "" && hasFlag(args, inlineFlags[name], inlineLong...) {
			return false
		}
		if pythonName.MatchString(name) && hasFlag(args, "cm") {
			return false
		}
		return len(rest) == 0 || rest[0].s == "-"
	}
	return false
}

// interpCmd judges python, perl, node, ruby, …: inline code is a prompt.
func interpCmd(j *judge, name string, args []arg, dir string, in stdin) {
	flags := inlineFlags[name]
	if pythonName.MatchString(name) {
		flags = "c"
		if m, ok := optionValue(args, 'm', ""); ok && (m.s == "pip" || m.s == "ensurepip") {
			pkgCmd(j, "pip", append([]arg{{s: "pip"}}, after(args, m)...), dir, in)
			return
		}
	}
	code := ""
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a.dyn || a.s == "--" || a.s == "-" || !strings.HasPrefix(a.s, "-") {
			break
		}
		if strings.HasPrefix(a.s, "--") {
			long, _, _ := strings.Cut(a.s[2:], "=")
			if slices.Contains(inlineLong, long) {
				code = a.s
				break
			}
			continue
		}
		cluster := a.s[1:]
		if flags != "" && strings.ContainsAny(cluster, flags) {
			code = a.s
			break
		}
		if strings.ContainsRune(cluster, 'm') && pythonName.MatchString(name) {
			break // -m module: the rest is the module's
		}
		if last := cluster[len(cluster)-1]; strings.ContainsRune("WXIx", rune(last)) && pythonName.MatchString(name) {
			i++
		}
	}
	if code != "" {
		text := ""
		if v, ok := optionValue(args, rune(code[len(code)-1]), ""); ok {
			text = v.s
		}
		j.add(prompt, "exec.inline-code", "", "%s %s runs inline code a person should read first: %s", name, code, short(text))
		return
	}
	if in.present && executesStdin(name, args) {
		j.fromStdin(name, in, dir, false)
		return
	}
	j.add(allow, wire.ReasonSandboxed, "", "%s runs a program file, confined by profile %s", name, j.in.Profile.Name)
}

func denoCmd(j *judge, name string, args []arg, dir string, in stdin) {
	ops := operands(args, "")
	if len(ops) > 0 && ops[0].s == "eval" {
		j.add(prompt, "exec.inline-code", "", "deno eval runs inline code a person should read first")
		return
	}
	netCmd(j, name, args, dir, in)
}

// awkCmd: an awk program is inline code, but only system(), pipes and file
// output escape it.
func awkCmd(j *judge, name string, args []arg, dir string, in stdin) {
	prog := ""
	if f, ok := optionValue(args, 'f', "file"); ok {
		j.add(allow, wire.ReasonSandboxed, "", "%s runs the program file %s, confined by profile %s", name, f.s, j.in.Profile.Name)
		return
	}
	if l, ok := optionValue(args, 'l', "load"); ok {
		j.add(prompt, "exec.inline-code", "", "%s -l %s loads a shared library: native code", name, short(l.s))
		return
	}
	ops := operands(args, "vFfiEl", "assign", "field-separator", "include", "exec", "load")
	if len(ops) > 0 {
		if ops[0].dyn {
			j.add(prompt, "exec.inline-code", "", "%s runs a program only known at run time", name)
			return
		}
		prog = ops[0].s
	}
	if strings.Contains(prog, "system") || strings.Contains(prog, "|") || strings.Contains(prog, ">") || strings.Contains(prog, "@load") {
		j.add(prompt, "exec.inline-code", "", "%s program runs commands or writes files: %s", name, short(prog))
		return
	}
	j.add(allow, "safe.read-only", "", "%s only reads and prints", name)
}

// evalCmd parses its words joined as a script.
func evalCmd(j *judge, name string, args []arg, dir string, in stdin) {
	if len(args) < 2 {
		j.add(allow, "safe.read-only", "", "eval without words does nothing")
		return
	}
	rest := args[1:]
	j.scriptArg(arg{s: words(rest), dyn: anyDyn(rest), fetches: anyFetch(rest)}, dir)
}

func sourceCmd(j *judge, name string, args []arg, dir string, in stdin) {
	if len(args) < 2 {
		return
	}
	f := args[1]
	switch {
	case f.fetches:
		j.add(deny, "exec.remote-code", "", "%s runs a script downloaded at run time", name)
	case f.dyn || f.s == "/dev/stdin" || f.s == "-":
		j.add(prompt, "shell.dynamic-script", "", "%s runs a script only known at run time", name)
	default:
		j.add(allow, wire.ReasonSandboxed, "", "%s runs the script file %s, confined by profile %s", name, f.s, j.in.Profile.Name)
	}
}

// findCmd: find reads, unless it runs commands (-exec, judged as commands) or
// deletes or writes files.
func findCmd(j *judge, name string, args []arg, dir string, in stdin) {
	var starts []arg
	i := 1
	for ; i < len(args); i++ {
		s := args[i].s
		if !args[i].dyn && (strings.HasPrefix(s, "-") || s == "(" || s == "!") {
			break
		}
		starts = append(starts, args[i])
	}
	if len(starts) == 0 {
		starts = []arg{{s: "."}}
	}
	acted := false
	for ; i < len(args); i++ {
		switch args[i].s {
		case "-exec", "-execdir", "-ok", "-okdir":
			acted = true
			// {} is each file found. When a test narrows the search, it is
			// some file under a starting point; otherwise it could be any
			// file of the tree, the tree itself included: only known at run time.
			narrowed := findSelects(args[1:i])
			start := i + 1
			for i++; i < len(args) && args[i].s != ";" && args[i].s != "+"; i++ {
			}
			for _, st := range starts {
				var cmd []arg
				for _, a := range args[start:i] {
					switch {
					case a.dyn || !strings.Contains(a.s, "{}"):
					case narrowed && !st.dyn:
						a = arg{s: strings.ReplaceAll(a.s, "{}", strings.TrimSuffix(st.s, "/")+"/{}")}
					default:
						a = arg{s: a.s, dyn: true}
					}
					cmd = append(cmd, a)
				}
				j.command(cmd, dir, stdin{})
			}
		case "-delete":
			acted = true
			if !findSelects(args[1:i]) {
				for _, s := range starts {
					if j.rootish(s, dir) {
						j.add(deny, "destructive.rm-root", "", "find %s -delete deletes a whole system, home or workspace tree: no test before -delete narrows it", s.s)
					}
				}
			}
			j.writes("find -delete", starts, dir)
		case "-fprint", "-fprint0", "-fprintf", "-fls":
			acted = true
			if i+1 < len(args) {
				j.write("find "+args[i].s, args[i+1], dir)
			}
		}
	}
	if !acted {
		j.add(allow, "safe.read-only", "", "find only reads")
	}
}

// findNarrowing are the tests that select some files, not every file:
// -delete after one of them (in the same and-chain) cannot empty a tree.
var findNarrowing = map[string]bool{
	"-name": true, "-iname": true, "-path": true, "-ipath": true, "-wholename": true, "-iwholename": true,
	"-regex": true, "-iregex": true, "-lname": true, "-ilname": true, "-newer": true, "-anewer": true,
	"-cnewer": true, "-newerXY": true, "-mtime": true, "-mmin": true, "-atime": true, "-amin": true,
	"-ctime": true, "-cmin": true, "-size": true, "-empty": true, "-user": true, "-group": true, "-uid": true,
	"-gid": true, "-perm": true, "-inum": true, "-links": true, "-samefile": true, "-nouser": true, "-nogroup": true,
	"-used": true, "-context": true,
}

// findSelects reports whether the expression before a -delete narrows what
// it deletes: a narrowing test, not negated, in the and-chain that leads
// to it. An -o or , starts a new chain (files the left side did not take
// reach the right side), so narrowing must be in -delete's own chain;
// -maxdepth 0 leaves only the starting points, which -delete removes only
// when empty.
func findSelects(expr []arg) bool {
	type group struct{ outer, all, negated bool }
	narrowed, all, negate := false, true, false
	var saved []group
	for i := 0; i < len(expr); i++ {
		a := expr[i]
		if a.dyn {
			continue
		}
		switch s := a.s; {
		case s == "-maxdepth" && i+1 < len(expr) && expr[i+1].s == "0":
			return true
		case s == "!" || s == "-not":
			negate = true
			continue
		case s == "-o" || s == "-or" || s == ",":
			all = all && narrowed
			narrowed = false
		case s == "(":
			saved = append(saved, group{narrowed, all, negate})
			narrowed, all = false, true
		case s == ")" && len(saved) > 0:
			g := saved[len(saved)-1]
			saved = saved[:len(saved)-1]
			narrowed = g.outer || (all && narrowed && !g.negated)
			all = g.all
		case findNarrowing[s] || strings.HasPrefix(s, "-newer"):
			if !negate {
				narrowed = true
			}
		}
		negate = false
	}
	for _, g := range saved {
		narrowed = narrowed || g.outer
	}
	return narrowed
}

func after(args []arg, a arg) []arg {
	for i := range args {
		if args[i] == a && i+1 < len(args) {
			return args[i+1:]
		}
	}
	return nil
}

func anyFetch(args []arg) bool {
	for _, a := range args {
		if a.fetches {
			return true
		}
	}
	return false
}
