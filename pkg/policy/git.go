package policy

import "strings"

var gitReadOnly = map[string]bool{
	"status": true, "log": true, "diff": true, "show": true, "rev-parse": true, "ls-files": true, "blame": true,
	"grep": true, "describe": true, "shortlog": true, "cat-file": true, "ls-tree": true, "show-ref": true,
	"for-each-ref": true, "whatchanged": true, "count-objects": true, "version": true, "help": true,
	"rev-list": true, "name-rev": true, "merge-base": true, "diff-tree": true, "diff-files": true,
	"diff-index": true, "check-ignore": true, "check-attr": true, "var": true, "verify-commit": true,
}

var gitRemote = map[string]bool{
	"clone": true, "fetch": true, "pull": true, "push": true, "ls-remote": true, "send-email": true,
	"request-pull": true, "svn": true, "p4": true,
}

// gitCmd judges git: reading is safe, remote operations need network,
// changing the repository needs a writable workspace, and the config file is
// protected.
func gitCmd(j *judge, name string, args []arg, dir string, in stdin) {
	// global options before the subcommand
	i := 1
	for ; i < len(args); i++ {
		a := args[i]
		if a.dyn {
			break
		}
		switch {
		case a.s == "-C":
			if i+1 < len(args) {
				if args[i+1].dyn {
					j.add(prompt, "fs.write-unknown", "", "git -C %s runs in a directory only known at run time", args[i+1].s)
					return
				}
				dir = j.abs(args[i+1].s, dir)
			}
			i++
		case a.s == "-c" || a.s == "--config-env" || a.s == "--git-dir" || a.s == "--work-tree" || a.s == "--namespace" || a.s == "--super-prefix":
			if (a.s == "-c" || a.s == "--config-env") && i+1 < len(args) {
				j.gitConfigArg(a.s, args[i+1])
			}
			i++
		case strings.HasPrefix(a.s, "-c") && !strings.HasPrefix(a.s, "--"): // -ckey=value
			j.gitConfigArg("-c", arg{s: a.s[2:]})
		case strings.HasPrefix(a.s, "--config-env="):
			j.gitConfigArg("--config-env", arg{s: strings.TrimPrefix(a.s, "--config-env=")})
		case strings.HasPrefix(a.s, "--exec-path="):
			j.add(prompt, "exec.inline-code", "", "git %s runs git's programs from %s", a.s, strings.TrimPrefix(a.s, "--exec-path="))
		case strings.HasPrefix(a.s, "-"):
		default:
			goto sub
		}
	}
sub:
	if i >= len(args) {
		j.add(allow, "safe.read-only", "", "git without a subcommand prints help")
		return
	}
	if args[i].dyn {
		j.add(prompt, "shell.dynamic-command", "", "the git subcommand %s is only known at run time", args[i].s)
		return
	}
	subArgs := args[i:]
	sub := subArgs[0].s
	j.gitIrreversible(sub, subArgs, dir)
	j.gitRunsCommands(sub, subArgs, dir)
	switch {
	case sub == "remote" && len(subArgs) > 1 && subArgs[1].s == "update":
		j.network("git remote update", nil)
		j.gitWrites(sub, dir)
	case gitReadOnly[sub]:
		if j.gitHiddenEffects(sub, subArgs, dir) {
			return
		}
		j.add(allow, "safe.read-only", "", "git %s only reads", sub)
	case sub == "branch" || sub == "tag" || sub == "remote" || (sub == "stash" && len(subArgs) > 1 && subArgs[1].s == "list"):
		if len(operands(subArgs, "")) == 0 || sub == "stash" || hasFlag(subArgs, "l", "list") || (sub == "remote" && hasFlag(subArgs, "v", "verbose")) {
			j.add(allow, "safe.read-only", "", "git %s lists", sub)
			return
		}
		j.gitWrites(sub, dir)
	case sub == "config":
		if hasFlag(subArgs, "l", "get", "get-all", "get-regexp", "list", "show-origin", "name-only") {
			j.add(allow, "safe.read-only", "", "git config only reads")
			return
		}
		switch {
		case hasFlag(subArgs, "", "global"):
			j.write("git config --global", arg{s: "~/.gitconfig"}, dir)
		case hasFlag(subArgs, "", "system"):
			j.write("git config --system", arg{s: "/etc/gitconfig"}, dir)
		default:
			j.write("git config", arg{s: ".git/config"}, j.gitTop(dir))
		}
	case sub == "submodule":
		ops := operands(subArgs, "b", "branch", "name", "reference", "depth")
		if len(ops) > 0 && (ops[0].s == "update" || ops[0].s == "add" || ops[0].s == "sync") {
			j.network("git submodule "+ops[0].s, nil)
		}
		j.gitWrites(sub, dir)
	case gitRemote[sub]:
		ops := operands(subArgs, "objc", "origin", "branch", "depth", "jobs", "config", "upload-pack", "template", "reference", "separate-git-dir", "filter")
		if sub == "clone" && len(ops) > 0 && !ops[0].dyn && isLocalRepo(ops[0].s) {
			target := arg{s: baseName(strings.TrimSuffix(ops[0].s, ".git"))}
			if len(ops) > 1 {
				target = ops[1]
			}
			j.write("git clone", target, dir)
			return
		}
		var hs []string
		if len(ops) > 0 && !ops[0].dyn && sub == "clone" {
			if h := repoHost(ops[0].s); h != "" {
				hs = []string{h}
			}
		}
		j.network("git "+sub, hs)
		switch sub {
		case "clone":
			target := arg{s: dir}
			if len(ops) > 1 {
				target = ops[1]
			}
			j.write("git clone", target, dir)
		case "fetch", "pull":
			j.gitWrites(sub, dir)
		}
	default:
		j.gitWrites(sub, dir)
	}
}

// gitWrites judges a subcommand that changes the repository: its .git and
// work tree must be writable.
func (j *judge) gitWrites(sub string, dir string) {
	top := j.gitTop(dir)
	j.write("git "+sub, arg{s: top + "/.git/objects"}, dir)
}

// gitTop is the repository's top directory: the nearest ancestor of dir
// inside the workspace that has .git, else dir.
func (j *judge) gitTop(dir string) string {
	for d := dir; within(d, j.in.Workspace); d = parent(d) {
		if exists(d + "/.git") {
			return d
		}
		if d == "/" {
			break
		}
	}
	return dir
}

// gitConfigArg judges one -c key=value or --config-env key=ENVVAR.
func (j *judge) gitConfigArg(opt string, kv arg) {
	if kv.dyn || gitConfigExecutes(kv.s) {
		j.add(prompt, "exec.inline-code", "", "git %s %s makes git run a command", opt, short(kv.s))
	}
}

// gitExecKeys are configuration keys (or their last part) whose value git
// runs, loads or takes as more configuration.
var gitExecSuffix = []string{
	".command", ".cmd", ".textconv", ".program", ".helper", ".driver", ".clean", ".smudge", ".process",
	".sshcommand", ".askpass", ".pager", ".editor", ".gitproxy", ".hookspath", ".fsmonitor", ".external",
	".packobjectshook", ".difffilter", ".alternaterefscommand", ".receivepack", ".uploadpack", ".templatedir",
	".path", ".tool", ".proxycommand",
}

func gitConfigExecutes(kv string) bool {
	k := strings.ToLower(strings.SplitN(kv, "=", 2)[0])
	for _, p := range []string{"alias.", "pager.", "include.", "includeif.", "protocol.", "sequence.editor", "core.sshcommand"} {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	for _, s := range gitExecSuffix {
		if strings.HasSuffix(k, s) {
			return true
		}
	}
	return false
}

// gitOutputSubs are the reading subcommands that take diff options, among
// them --output=FILE.
var gitOutputSubs = map[string]bool{
	"log": true, "show": true, "diff": true, "whatchanged": true, "diff-tree": true, "diff-index": true,
	"diff-files": true, "range-diff": true,
}

// gitHiddenEffects judges what a reading subcommand's options make it do:
// --output writes a file, grep -O runs a pager. It reports whether any did.
func (j *judge) gitHiddenEffects(sub string, args []arg, dir string) bool {
	acted := false
	if gitOutputSubs[sub] {
		for i := 1; i < len(args); i++ {
			a := args[i]
			if a.dyn || a.s == "--" {
				break
			}
			long, v, joined := strings.Cut(strings.TrimPrefix(a.s, "--"), "=")
			if !strings.HasPrefix(a.s, "--") || !abbrev(long, "output", 3) || strings.HasPrefix(long, "output-") {
				continue
			}
			if !joined {
				if i+1 >= len(args) {
					break
				}
				i++
				j.write("git "+sub+" --output", args[i], dir)
			} else {
				j.write("git "+sub+" --output", arg{s: v}, dir)
			}
			acted = true
		}
	}
	if sub == "grep" {
		for _, a := range args[1:] {
			if a.dyn {
				continue
			}
			pager := ""
			switch {
			case strings.HasPrefix(a.s, "--open-files-in-pager"), a.s == "-O":
				_, pager, _ = strings.Cut(a.s, "=")
			case strings.HasPrefix(a.s, "-O") && !strings.HasPrefix(a.s, "--"):
				pager = a.s[2:]
			default:
				continue
			}
			acted = true
			if pager == "" {
				j.add(prompt, "exec.inline-code", "", "git grep -O opens the files in a pager, a program git runs")
			} else {
				j.runsCommand("git grep -O", arg{s: pager}, dir)
			}
		}
	}
	return acted
}

func isLocalRepo(s string) bool {
	return !strings.Contains(s, "://") && !(strings.Contains(s, ":") && !strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "."))
}

func repoHost(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		rest := s[i+3:]
		if at := strings.LastIndexByte(rest, '@'); at >= 0 {
			rest = rest[at+1:]
		}
		h, _, _ := strings.Cut(rest, "/")
		return h
	}
	if at := strings.IndexByte(s, '@'); at >= 0 {
		s = s[at+1:]
	}
	h, _, _ := strings.Cut(s, ":")
	return h
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
