package policy

import (
	"regexp"
	"slices"
	"strings"
)

// Environment variables and shell builtins that make a command run another:
// what they name is judged as a script, what loads code is a prompt.

// envCommand are variables whose value a program runs as a command.
var envCommand = map[string]bool{
	"PAGER": true, "GIT_PAGER": true, "MANPAGER": true, "BAT_PAGER": true, "SYSTEMD_PAGER": true,
	"GIT_EXTERNAL_DIFF": true, "GIT_SSH_COMMAND": true, "GIT_SSH": true, "GIT_EDITOR": true,
	"GIT_SEQUENCE_EDITOR": true, "EDITOR": true, "VISUAL": true, "GIT_ASKPASS": true, "SSH_ASKPASS": true,
	"SUDO_ASKPASS": true, "LESSOPEN": true, "LESSCLOSE": true, "GIT_PROXY_COMMAND": true, "BROWSER": true,
	"PROMPT_COMMAND": true,
}

// envCode are variables that load code or options into programs they do not
// name, among them the reading ones (ack is Perl, git runs its own
// programs). NODE_OPTIONS and ENV are left out: node runs code anyway, and
// ENV is read by interactive shells only while projects use the name.
var envCode = map[string]bool{
	"LD_PRELOAD": true, "LD_AUDIT": true, "BASH_ENV": true, "PERL5OPT": true, "RUBYOPT": true,
	"RIPGREP_CONFIG_PATH": true, "GIT_EXEC_PATH": true, "GIT_CONFIG_GLOBAL": true, "GIT_CONFIG_SYSTEM": true,
	"MANOPT": true, "LESSKEYIN": true, "ACK_OPTIONS": true, "ACKRC": true, "BAT_CONFIG_PATH": true,
}

var gitConfigKeyVar = regexp.MustCompile(`^GIT_CONFIG_KEY_[0-9]+$`)

// environment judges the variables a run sets beside its command, in name
// order, as the assignments they amount to.
func (j *judge) environment(env map[string]string, dir string) {
	names := make([]string, 0, len(env))
	for n, v := range env {
		switch {
		case envCommand[n] && plainCommand(v):
			// EDITOR=vim, PAGER="less -R", LESSOPEN="||lesspipe.sh %s": a
			// program the command may start, confined as it is; what moat
			// sh passes on from a terminal, judged on every run otherwise.
		case judgedVar(n):
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		j.envAssign(n, arg{s: env[n]}, dir)
	}
}

// judgedVar reports whether an assignment to n is judged (envAssign): a
// variable whose value a program runs, one that loads code, git's config.
func judgedVar(n string) bool {
	return envCommand[n] || envCode[n] || strings.HasPrefix(n, "GIT_CONFIG")
}

// plainCommand reports whether v names a program and its words only: no
// shell syntax that could make it more than starting that program.
func plainCommand(v string) bool {
	v = strings.TrimLeft(v, "|")
	return v != "" && !strings.ContainsAny(v, "|&;<>()$`\\\"'\n*?[]{}~=#!")
}

// envAssign judges NAME=value given to a command or exported.
func (j *judge) envAssign(name string, value arg, dir string) {
	switch {
	case envCommand[name]:
		v := strings.TrimLeft(value.s, "|") // LESSOPEN="|cmd %s", "||cmd %s"
		j.scriptArg(arg{s: v, dyn: value.dyn, fetches: value.fetches}, dir)
	case envCode[name] && !(value.s == "/dev/null" && !value.dyn):
		j.add(prompt, "exec.inline-code", "", "%s=%s makes programs load code or options a person should read first", name, short(value.s))
	case gitConfigKeyVar.MatchString(name) && (value.dyn || gitConfigExecutes(value.s)):
		j.add(prompt, "exec.inline-code", "", "%s=%s sets git configuration that runs a command", name, short(value.s))
	case name == "GIT_CONFIG_PARAMETERS" && (value.dyn || gitConfigParamsExecute(value.s)):
		j.add(prompt, "exec.inline-code", "", "GIT_CONFIG_PARAMETERS sets git configuration that runs a command")
	}
}

func gitConfigParamsExecute(v string) bool {
	for _, part := range strings.Fields(v) {
		if gitConfigExecutes(strings.Trim(part, `'"`)) {
			return true
		}
	}
	return false
}

// envWords judges NAME=value words (env, export, declare).
func (j *judge) envWords(args []arg, dir string) {
	for _, a := range args[1:] {
		if a.dyn {
			continue
		}
		if name, v, ok := strings.Cut(a.s, "="); ok && envAssign.MatchString(a.s) {
			j.envAssign(name, arg{s: v}, dir)
		}
	}
}

// exportCmd: export, declare and friends set variables; those that make
// programs run commands are judged.
func exportCmd(j *judge, name string, args []arg, dir string, in stdin) {
	j.envWords(args, dir)
	safeCmd(j, name, args, dir, in)
}

// aliasCmd: an alias's text runs wherever the name is used (with
// expand_aliases): it is judged as a script.
func aliasCmd(j *judge, name string, args []arg, dir string, in stdin) {
	for _, a := range args[1:] {
		if _, v, ok := strings.Cut(a.s, "="); ok && !strings.HasPrefix(a.s, "-") {
			j.scriptArg(arg{s: v, dyn: a.dyn, fetches: a.fetches}, dir)
		}
	}
	safeCmd(j, name, args, dir, in)
}

// trapCmd: a trap's action runs when the signal comes (EXIT: always).
func trapCmd(j *judge, name string, args []arg, dir string, in stdin) {
	ops := operands(args, "")
	if len(ops) >= 2 && ops[0].s != "-" {
		j.scriptArg(ops[0], dir)
	}
	safeCmd(j, name, args, dir, in)
}

// hashCmd: hash -p PATH NAME makes NAME run PATH.
func hashCmd(j *judge, name string, args []arg, dir string, in stdin) {
	if p, ok := shortValue(args, 'p', "r"); ok {
		j.add(prompt, "exec.inline-code", "", "hash -p %s makes a command name run that program instead", short(p.s))
		return
	}
	safeCmd(j, name, args, dir, in)
}

// enableCmd: enable -f loads a shell builtin from a shared library.
func enableCmd(j *judge, name string, args []arg, dir string, in stdin) {
	if f, ok := shortValue(args, 'f', "adnps"); ok {
		j.add(prompt, "exec.inline-code", "", "enable -f %s loads a shared library into the shell: native code", short(f.s))
		return
	}
	safeCmd(j, name, args, dir, in)
}
