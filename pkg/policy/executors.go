package policy

import "strings"

// Hidden executors and writers: options that make a reading command, a
// workspace command or a network client run a program or write a file. What they run is judged
// as if it were run directly; what they write is judged as a write.

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
