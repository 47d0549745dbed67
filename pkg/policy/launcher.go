package policy

import (
	"path"
	"regexp"
	"slices"
	"strings"
)

// envAssign matches NAME=value, the words env and the shell treat as assignments.
var envAssign = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// unwrap strips launchers — programs that run the rest of their arguments as
// a command — and judges what they add (sudo escalates, su -c runs a script).
// It returns the command that finally runs and the directory it runs in.
func (j *judge) unwrap(args []arg, dir string) ([]arg, string) {
	for len(args) > 0 && !args[0].dyn {
		name := path.Base(args[0].s)
		var rest []arg
		switch name {
		case "env":
			rest, dir = j.unwrapEnv(args, dir)
		case "sudo", "doas", "pkexec", "run0":
			j.add(deny, "priv.escalation", "", "%s runs a command with other privileges: a sandboxed command never gains privileges", name)
			rest = skipOptions(args, "ugChpDrtTUR", "user", "group", "close-from", "chdir", "prompt", "role", "type", "other-user", "host")
			if name == "pkexec" || name == "run0" {
				rest = skipOptions(args, "u", "user")
			}
		case "su", "runuser":
			j.add(deny, "priv.escalation", "", "%s switches user: a sandboxed command never gains privileges", name)
			if script, ok := optionValue(args, 'c', "command"); ok {
				j.scriptArg(script, dir)
			}
			return nil, dir
		case "nice":
			rest = skipOptions(args, "n", "adjustment")
			rest = dropNumericFlag(rest)
		case "ionice":
			rest = skipOptions(args, "cnpPu", "class", "classdata", "pid", "pgid", "uid")
		case "timeout":
			rest = skipOptions(args, "sk", "signal", "kill-after")
			if len(rest) > 0 {
				rest = rest[1:] // the duration
			}
		case "nohup", "time", "builtin", "unbuffer", "caffeinate", "catchsegv", "proxychains", "proxychains4", "tsocks", "torsocks", "strace", "ltrace", "valgrind", "firejail", "bwrap":
			rest = skipOptions(args, "o", "output", "p")
		case "command":
			if hasFlag(args, "vV") {
				j.add(allow, "safe.read-only", "", "command -v only looks a name up")
				return nil, dir
			}
			rest = skipOptions(args, "")
		case "exec":
			rest = skipOptions(args, "a")
		case "stdbuf":
			rest = skipOptions(args, "ioe", "input", "output", "error")
		case "setsid", "chrt", "taskset", "numactl":
			rest = skipOptions(args, "pm", "pid")
			if name == "taskset" || name == "chrt" {
				if len(rest) > 0 {
					rest = rest[1:] // the mask or priority
				}
			}
		case "flock":
			if script, ok := optionValue(args, 'c', "command"); ok {
				j.scriptArg(script, dir)
				return nil, dir
			}
			rest = skipOptions(args, "wE", "timeout", "conflict-exit-code")
			if len(rest) > 0 {
				rest = rest[1:] // the lock file
			}
		case "watch":
			rest = skipOptions(args, "nqd", "interval", "differences", "chgexit")
			if len(rest) > 0 && !hasFlag(args, "x", "exec") {
				j.scriptArg(arg{s: words(rest), dyn: anyDyn(rest)}, dir)
				return nil, dir
			}
		case "script":
			if script, ok := optionValue(args, 'c', "command"); ok {
				j.scriptArg(script, dir)
				return nil, dir
			}
			return args, dir
		case "xargs":
			rest = skipOptions(args, "aEdIiLlnPsS", "arg-file", "eof", "delimiter", "replace", "max-lines", "max-args", "max-procs", "max-chars", "process-slot-var")
			if len(rest) == 0 {
				rest = statics([]string{"echo"})
			}
			rest = append([]arg(nil), rest...)
			if repl, ok := optionValue(args, 'I', "replace"); ok && !repl.dyn {
				// -I X substitutes each input line for X: those words are unknown here.
				for i := range rest {
					if i > 0 && strings.Contains(rest[i].s, repl.s) {
						rest[i] = arg{s: rest[i].s, dyn: true}
					}
				}
			} else {
				// xargs appends words read from stdin: unknown here.
				rest = append(rest, arg{s: "<stdin words>", dyn: true})
			}
		case "busybox", "toybox":
			rest = args[1:]
		case "nsenter", "chroot", "unshare", "capsh", "setpriv":
			j.add(deny, "priv.escalation", "", "%s changes namespaces, root or capabilities: only the sandbox does that", name)
			return nil, dir
		default:
			return args, dir
		}
		args = rest
	}
	return args, dir
}

// unwrapEnv strips env's options and NAME=value words; -S splits a string
// into the command, -C changes directory.
func (j *judge) unwrapEnv(args []arg, dir string) ([]arg, string) {
	i := 1
	for ; i < len(args); i++ {
		a := args[i]
		if a.dyn {
			break
		}
		switch {
		case a.s == "--":
			return args[i+1:], dir
		case a.s == "-u" || a.s == "--unset" || a.s == "-C" || a.s == "--chdir":
			if (a.s == "-C" || a.s == "--chdir") && i+1 < len(args) && !args[i+1].dyn {
				dir = j.abs(args[i+1].s, dir)
			}
			i++
		case a.s == "-S" || a.s == "--split-string":
			if i+1 < len(args) {
				split := j.fieldsOf(args[i+1])
				return append(split, args[i+2:]...), dir
			}
		case strings.HasPrefix(a.s, "--chdir="):
			dir = j.abs(strings.TrimPrefix(a.s, "--chdir="), dir)
		case strings.HasPrefix(a.s, "-") && len(a.s) > 1:
		case envAssign.MatchString(a.s):
			name, v, _ := strings.Cut(a.s, "=")
			j.envAssign(name, arg{s: v}, dir)
		default:
			return args[i:], dir
		}
	}
	return args[min(i, len(args)):], dir
}

// skipOptions returns args[1:] without the leading options: the command a
// launcher runs. takesValue and long name the options that consume the next word.
func skipOptions(args []arg, takesValue string, long ...string) []arg {
	return scanArgs(args, takesValue, long, true)
}

// operands returns the operands among args[1:], skipping options wherever
// they are (GNU style).
func operands(args []arg, takesValue string, long ...string) []arg {
	return scanArgs(args, takesValue, long, false)
}

// scanArgs walks args[1:] as getopt would. With stop it returns everything
// from the first operand on; otherwise the operands only. Long options
// written --name=value never consume the next word; an unknown word is an
// operand.
func scanArgs(args []arg, takesValue string, long []string, stop bool) []arg {
	var out []arg
	for i := 1; i < len(args); i++ {
		a := args[i]
		switch {
		case a.dyn || a.s == "-" || a.s == "" || a.s[0] != '-':
			if stop {
				return args[i:]
			}
			out = append(out, a)
		case a.s == "--":
			return append(out, args[i+1:]...)
		case strings.HasPrefix(a.s, "--"):
			name, _, has := strings.Cut(a.s[2:], "=")
			if !has && slices.Contains(long, name) {
				i++
			}
		default:
			cluster := a.s[1:]
			for k, c := range cluster {
				if strings.ContainsRune(takesValue, c) {
					if k == len(cluster)-1 {
						i++
					}
					break
				}
			}
		}
	}
	return out
}

// dropNumericFlag drops nice's old-style -N adjustment.
func dropNumericFlag(args []arg) []arg {
	if len(args) > 0 && !args[0].dyn && len(args[0].s) > 1 && args[0].s[0] == '-' && strings.Trim(args[0].s[1:], "0123456789") == "" {
		return args[1:]
	}
	return args
}

// optionValue finds -c VALUE (or -cVALUE, --command=VALUE, --command VALUE).
func optionValue(args []arg, short rune, long string) (arg, bool) {
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a.dyn {
			continue
		}
		if a.s == "--"+long || (len(a.s) == 2 && a.s[0] == '-' && rune(a.s[1]) == short) {
			if i+1 < len(args) {
				return args[i+1], true
			}
			return arg{}, false
		}
		if v, ok := strings.CutPrefix(a.s, "--"+long+"="); ok && long != "" {
			return arg{s: v}, true
		}
		if len(a.s) > 2 && a.s[0] == '-' && a.s[1] != '-' && rune(a.s[1]) == short {
			return arg{s: a.s[2:]}, true // -cVALUE
		}
	}
	return arg{}, false
}

func anyDyn(args []arg) bool {
	for _, a := range args {
		if a.dyn {
			return true
		}
	}
	return false
}
