package policy

import (
	"regexp"
	"strings"
)

// Hidden executors and writers: options and environment variables that make
// a reading command run a program or write a file. What they run is judged
// as if it were run directly; what they write is judged as a write.

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

// envAssign judges NAME=value given to a command or exported.
func (j *judge) envAssign(name string, value arg, dir string) {
	switch {
	case envCommand[name]:
		v := strings.TrimPrefix(value.s, "|") // LESSOPEN="|cmd %s"
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

// runsCommand judges a command an option runs: words split as a shell would.
func (j *judge) runsCommand(what string, cmd arg, dir string) {
	if cmd.dyn {
		j.add(prompt, "shell.dynamic-command", "", "%s runs a command only known at run time (%s)", what, short(cmd.s))
		return
	}
	j.script(cmd.s, dir)
}

// longValue finds --name=VALUE or --name VALUE, the name abbreviated to at
// least min letters when the program takes abbreviations (min 0: exact).
func longValue(args []arg, name string, min int) (arg, bool) {
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a.dyn || !strings.HasPrefix(a.s, "--") {
			continue
		}
		if a.s == "--" {
			return arg{}, false
		}
		long, v, joined := strings.Cut(a.s[2:], "=")
		if long != name && (min == 0 || !abbrev(long, name, min)) {
			continue
		}
		if joined {
			return arg{s: v}, true
		}
		if i+1 < len(args) {
			return args[i+1], true
		}
	}
	return arg{}, false
}

// shortValue finds -x VALUE or -xVALUE, also at the end of a cluster of
// flags that take no value (-ax VALUE).
func shortValue(args []arg, x byte, flags string) (arg, bool) {
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a.dyn || len(a.s) < 2 || a.s[0] != '-' || a.s[1] == '-' {
			if a.s == "--" {
				break
			}
			continue
		}
		cluster := a.s[1:]
		for k := 0; k < len(cluster); k++ {
			if cluster[k] == x {
				if k+1 < len(cluster) {
					return arg{s: cluster[k+1:]}, true
				}
				if i+1 < len(args) {
					return args[i+1], true
				}
				return arg{}, false
			}
			if !strings.ContainsRune(flags, rune(cluster[k])) {
				break
			}
		}
	}
	return arg{}, false
}

// rgCmd: ripgrep reads, unless --pre or --hostname-bin make it run a program.
func rgCmd(j *judge, name string, args []arg, dir string, in stdin) {
	acted := false
	for _, opt := range []string{"pre", "hostname-bin"} {
		if v, ok := longValue(args, opt, 0); ok {
			j.runsCommand(name+" --"+opt, v, dir)
			acted = true
		}
	}
	if !acted {
		safeCmd(j, name, args, dir, in)
	}
}

// pagerCmd: a reader with a --pager option (bat, ag, ack, man -P).
func pagerCmd(j *judge, name string, args []arg, dir string, in stdin) {
	acted := false
	if v, ok := longValue(args, "pager", 3); ok {
		j.runsCommand(name+" --pager", v, dir)
		acted = true
	}
	switch name {
	case "man":
		if v, ok := shortValue(args, 'P', "aflwWiIu"); ok {
			j.runsCommand("man -P", v, dir)
			acted = true
		}
		if hasFlag(args, "H", "html") || hasLongJoined(args, "html") {
			j.add(prompt, "exec.inline-code", "", "man -H starts a web browser")
			acted = true
		}
		if _, ok := longValue(args, "config-file", 2); ok || hasFlag(args, "C") {
			j.add(prompt, "exec.inline-code", "", "man -C reads a configuration that can name the programs man runs")
			acted = true
		}
	case "ack":
		if v, ok := longValue(args, "output", 3); ok {
			j.add(prompt, "exec.inline-code", "", "ack --output evaluates a Perl expression: %s", short(v.s))
			acted = true
		}
	case "info":
		for _, opt := range []string{"output", "dribble"} {
			if v, ok := longValue(args, opt, 2); ok {
				j.write("info --"+opt, v, dir)
				acted = true
			}
		}
		if v, ok := shortValue(args, 'o', "anw"); ok {
			j.write("info -o", v, dir)
			acted = true
		}
	}
	if !acted {
		safeCmd(j, name, args, dir, in)
	}
}

func hasLongJoined(args []arg, name string) bool {
	for _, a := range args[1:] {
		if !a.dyn && strings.HasPrefix(a.s, "--"+name+"=") {
			return true
		}
	}
	return false
}

// lessCmd: less writes its input with -o/-O (--log-file), and its +cmd
// initial commands may run a shell command (!cmd, |cmd).
func lessCmd(j *judge, name string, args []arg, dir string, in stdin) {
	acted := false
	for _, a := range args[1:] {
		if !a.dyn && strings.HasPrefix(a.s, "+") {
			if i := strings.IndexAny(a.s, "!|"); i >= 0 {
				j.add(prompt, "exec.inline-code", "", "%s %s runs a shell command", name, short(a.s))
				j.script(strings.TrimLeft(a.s[i+1:], "!|"), dir)
				acted = true
			}
		}
	}
	for _, o := range []byte{'o', 'O'} {
		if v, ok := shortValue(args, o, ""); ok {
			j.write(name+" -"+string(o), v, dir)
			acted = true
		}
	}
	for _, opt := range []string{"log-file", "LOG-FILE"} {
		if v, ok := longValue(args, opt, 3); ok {
			j.write(name+" --"+opt, v, dir)
			acted = true
		}
	}
	if !acted {
		safeCmd(j, name, args, dir, in)
	}
}

// fdCmd: fd finds, and -x/--exec or -X/--exec-batch run a command per match.
func fdCmd(j *judge, name string, args []arg, dir string, in stdin) {
	for i := 1; i < len(args); i++ {
		s := args[i].s
		if args[i].dyn || (s != "-x" && s != "--exec" && s != "-X" && s != "--exec-batch") {
			continue
		}
		var cmd []arg
		for i++; i < len(args) && args[i].s != ";"; i++ {
			a := args[i]
			if !a.dyn && strings.Contains(a.s, "{") {
				a = arg{s: a.s, dyn: true}
			}
			cmd = append(cmd, a)
		}
		if len(cmd) > 0 {
			j.command(cmd, dir, stdin{})
			return
		}
	}
	safeCmd(j, name, args, dir, in)
}

// treeCmd: tree -o writes its listing to a file.
func treeCmd(j *judge, name string, args []arg, dir string, in stdin) {
	if v, ok := shortValue(args, 'o', "adfliqNQpugsDFvrtcxACJhS"); ok {
		j.write(name+" -o", v, dir)
		return
	}
	safeCmd(j, name, args, dir, in)
}

// xxdCmd: xxd writes its second operand.
func xxdCmd(j *judge, name string, args []arg, dir string, in stdin) {
	ops := operands(args, "cglosnC", "cols", "groupsize", "len", "offset", "seek", "name")
	if len(ops) >= 2 && ops[1].s != "-" {
		j.write(name, ops[1], dir)
		return
	}
	safeCmd(j, name, args, dir, in)
}

// csplitCmd: csplit writes its pieces, named by the prefix, in the directory.
func csplitCmd(j *judge, name string, args []arg, dir string, in stdin) {
	prefix := arg{s: "xx"}
	if v, ok := shortValue(args, 'f', "ksqzn"); ok {
		prefix = v
	} else if v, ok := longValue(args, "prefix", 2); ok {
		prefix = v
	}
	j.write(name, prefix, dir)
}

// base64Cmd: BSD base64 writes -o FILE.
func base64Cmd(j *judge, name string, args []arg, dir string, in stdin) {
	if v, ok := shortValue(args, 'o', "dDi"); ok {
		j.write(name+" -o", v, dir)
	} else if v, ok := longValue(args, "output", 0); ok {
		j.write(name+" --output", v, dir)
	} else {
		safeCmd(j, name, args, dir, in)
	}
}

// yqCmd: yq -i edits its files in place.
func yqCmd(j *judge, name string, args []arg, dir string, in stdin) {
	if !hasFlag(args, "i", "inplace", "in-place") {
		safeCmd(j, name, args, dir, in)
		return
	}
	ops := operands(args, "oIpP", "output-format", "input-format", "indent", "front-matter", "expression")
	if _, ok := longValue(args, "expression", 0); !ok && len(ops) > 1 {
		ops = ops[1:] // the expression
	}
	j.writes(name+" -i", ops, dir)
}

// historyCmd: history -w and -a write the history file they name.
func historyCmd(j *judge, name string, args []arg, dir string, in stdin) {
	if hasFlag(args, "wa") {
		if ops := operands(args, ""); len(ops) > 0 {
			j.writes("history -w", ops, dir)
			return
		}
	}
	safeCmd(j, name, args, dir, in)
}

// nmCmd: --plugin loads a shared library into nm.
func nmCmd(j *judge, name string, args []arg, dir string, in stdin) {
	if v, ok := longValue(args, "plugin", 3); ok {
		j.add(prompt, "exec.inline-code", "", "%s --plugin %s loads a shared library: native code", name, short(v.s))
		return
	}
	safeCmd(j, name, args, dir, in)
}

// fileCmd: file -C compiles a magic file into the current directory.
func fileCmd(j *judge, name string, args []arg, dir string, in stdin) {
	if hasFlag(args, "C", "compile") {
		j.write("file -C", arg{s: dir}, dir)
		return
	}
	safeCmd(j, name, args, dir, in)
}

// exportCmd: export, declare and friends set variables; those that make
// programs run commands are judged.
func exportCmd(j *judge, name string, args []arg, dir string, in stdin) {
	j.envWords(args, dir)
	safeCmd(j, name, args, dir, in)
}

// sshCommandOptions are ssh -o options whose value ssh runs locally.
var sshCommandOptions = []string{"proxycommand", "localcommand", "knownhostscommand", "pkcs11provider", "securitykeyprovider", "remotecommand"}

// clientExecutors judges what network clients run on this machine:
// ssh -o ProxyCommand=…, scp/sftp -S PROGRAM, rsync -e/--rsh, wget
// --use-askpass, and a client configuration file that can name such commands.
func (j *judge) clientExecutors(name string, args []arg, dir string) {
	switch name {
	case "ssh", "scp", "sftp", "mosh", "rsync":
		for i := 1; i < len(args); i++ {
			a := args[i]
			if a.dyn {
				continue
			}
			opt := ""
			switch {
			case a.s == "-o" && i+1 < len(args):
				opt = args[i+1].s
			case strings.HasPrefix(a.s, "-o") && !strings.HasPrefix(a.s, "--"):
				opt = a.s[2:]
			}
			cut := strings.IndexAny(opt, "= ")
			if cut < 0 {
				continue
			}
			key, val := opt[:cut], strings.TrimLeft(opt[cut+1:], "= ")
			for _, k := range sshCommandOptions {
				if strings.EqualFold(key, k) {
					j.runsCommand(name+" -o "+key, arg{s: val}, dir)
				}
			}
		}
		if name != "rsync" {
			if f, ok := shortValue(args, 'F', "46AaCfGgKkMNnqsTtVvXxYy"); ok && name == "ssh" {
				j.add(prompt, "exec.inline-code", "", "ssh -F %s reads a configuration that can name commands ssh runs", short(f.s))
			}
			if p, ok := shortValue(args, 'S', "346BCpqrTv"); ok && name != "ssh" {
				j.runsCommand(name+" -S", p, dir)
			}
			return
		}
		if v, ok := shortValue(args, 'e', "vqcarRbuldLptgoDzhnSxCHAXWPicKOJmM"); ok {
			j.runsCommand("rsync -e", v, dir)
		} else if v, ok := longValue(args, "rsh", 3); ok {
			j.runsCommand("rsync --rsh", v, dir)
		}
	case "wget":
		if v, ok := longValue(args, "use-askpass", 5); ok {
			j.runsCommand("wget --use-askpass", v, dir)
		}
	}
}

// gitRunsCommands judges git subcommands and options that run a command
// given on the command line: rebase -x, bisect run, submodule foreach,
// difftool -x, --upload-pack/--receive-pack/--exec, clone --template (its
// hooks run), ext:: remotes.
func (j *judge) gitRunsCommands(sub string, args []arg, dir string) {
	ops := operands(args, "")
	switch sub {
	case "rebase":
		for i := 1; i < len(args); i++ {
			if a := args[i]; a.s == "-x" || a.s == "--exec" {
				if i+1 < len(args) {
					j.runsCommand("git rebase --exec", args[i+1], dir)
				}
			} else if v, ok := strings.CutPrefix(a.s, "--exec="); ok {
				j.runsCommand("git rebase --exec", arg{s: v}, dir)
			} else if v, ok := strings.CutPrefix(a.s, "-x"); ok && v != "" && !a.dyn {
				j.runsCommand("git rebase -x", arg{s: v}, dir)
			}
		}
	case "bisect":
		if len(ops) > 1 && ops[0].s == "run" {
			j.command(ops[1:], dir, stdin{})
		}
	case "submodule":
		for i, op := range ops {
			if op.s == "foreach" && i+1 < len(ops) {
				j.scriptArg(arg{s: words(ops[i+1:]), dyn: anyDyn(ops[i+1:])}, dir)
				break
			}
		}
	case "difftool", "mergetool":
		if v, ok := longValue(args, "extcmd", 0); ok {
			j.runsCommand("git "+sub+" --extcmd", v, dir)
		} else if v, ok := shortValue(args, 'x', "dgy"); ok {
			j.runsCommand("git "+sub+" -x", v, dir)
		}
	}
	for _, opt := range []string{"upload-pack", "receive-pack", "exec"} {
		if sub == "rebase" && opt == "exec" {
			continue
		}
		if v, ok := longValue(args, opt, 0); ok {
			j.runsCommand("git "+sub+" --"+opt, v, dir)
		}
	}
	if sub == "clone" {
		if v, ok := shortValue(args, 'u', "lsqvn"); ok {
			j.runsCommand("git clone -u", v, dir)
		}
		if v, ok := longValue(args, "template", 0); ok {
			j.add(prompt, "exec.inline-code", "", "git clone --template=%s installs the hooks found there, which git then runs", short(v.s))
		}
	}
	for _, op := range ops {
		if rest, ok := strings.CutPrefix(op.s, "ext::"); ok && !op.dyn {
			j.runsCommand("git ext:: remote", arg{s: rest}, dir)
		}
	}
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
