package policy

import (
	"regexp"
	"strings"
)

// handler judges one command by its program name. dir is where it runs; in
// is its standard input when a here-doc gives it.
type handler func(j *judge, name string, args []arg, dir string, in stdin)

// handlers maps program names to their judges. Built in init to break the
// cycle with script judging.
var handlers map[string]handler

func init() {
	handlers = map[string]handler{}
	for _, n := range safeCommands {
		handlers[n] = safeCmd
	}
	for n, h := range map[string]handler{
		"rm": rmCmd, "rmdir": targetsCmd(""), "unlink": targetsCmd(""), "shred": shredCmd,
		"mkdir": targetsCmd("m", "mode", "context"), "touch": targetsCmd("rdt", "reference", "date"),
		"truncate": targetsCmd("sr", "size", "reference"), "tee": targetsCmd("", "output-error"),
		"chmod": chmodCmd, "chown": ownerCmd, "chgrp": ownerCmd,
		"cp": copyCmd, "install": copyCmd, "mv": moveCmd, "ln": linkCmd, "link": linkCmd,
		"dd": ddCmd, "sed": sedCmd, "sort": sortCmd, "uniq": uniqCmd,
		"tar": tarCmd, "unzip": unzipCmd, "patch": inDirCmd, "gzip": targetsCmd("S", "suffix"),
		"gunzip": targetsCmd("S", "suffix"), "bzip2": targetsCmd(""), "xz": targetsCmd(""), "zstd": targetsCmd("o"),
		"copy": copyCmd, "xcopy": copyCmd, "move": moveCmd, "del": targetsCmd(""), "erase": targetsCmd(""),
		"wipefs": diskCmd, "fdisk": diskCmd, "sfdisk": diskCmd, "parted": diskCmd, "sgdisk": diskCmd,
		"gdisk": diskCmd, "blkdiscard": diskCmd, "mkswap": diskCmd, "mke2fs": diskCmd, "cryptsetup": diskCmd,
		"shutdown": powerCmd, "reboot": powerCmd, "halt": powerCmd, "poweroff": powerCmd,
		"init": initCmd, "telinit": initCmd, "systemctl": systemctlCmd,
		"setcap": privCmd, "newgrp": privCmd, "sg": privCmd,
		"eval": evalCmd, "source": sourceCmd, ".": sourceCmd,
		"find": findCmd, "git": gitCmd, "awk": awkCmd, "gawk": awkCmd, "mawk": awkCmd, "nawk": awkCmd,
		"deno": denoCmd, "rg": rgCmd, "bat": pagerCmd, "ag": pagerCmd, "ack": pagerCmd, "man": pagerCmd,
		"info": pagerCmd, "less": lessCmd, "fd": fdCmd, "fdfind": fdCmd, "tree": treeCmd, "xxd": xxdCmd,
		"csplit": csplitCmd, "yq": yqCmd, "base64": base64Cmd, "history": historyCmd, "nm": nmCmd, "file": fileCmd,
		"alias": aliasCmd, "trap": trapCmd, "hash": hashCmd, "enable": enableCmd,
		"export": exportCmd, "declare": exportCmd, "local": exportCmd, "typeset": exportCmd, "readonly": exportCmd,
	} {
		handlers[n] = h
	}
	for _, n := range shells {
		handlers[n] = shellCmd
	}
	for n := range netClients {
		handlers[n] = netCmd
	}
	for n := range packageManagers {
		handlers[n] = pkgCmd
	}
}

var (
	pythonName = regexp.MustCompile(`^(python|pypy)[0-9.]*$`)
	mkfsName   = regexp.MustCompile(`^mkfs(\..+)?$`)
	pipName    = regexp.MustCompile(`^pip[0-9.]*$`)
)

// familyHandler judges programs known by a pattern rather than a name.
func familyHandler(name string) handler {
	switch {
	case pythonName.MatchString(name):
		return interpCmd
	case mkfsName.MatchString(name):
		return diskCmd
	case pipName.MatchString(name):
		return pkgCmd
	case inlineFlags[name] != "":
		return interpCmd
	}
	return nil
}

// safeCommands only read (the read-deny check still applies to their paths).
var safeCommands = []string{
	"ls", "cat", "grep", "egrep", "fgrep", "rg", "ag", "ack", "head", "tail", "wc", "pwd", "echo", "printf",
	"true", "false", "which", "type", "whoami", "id", "date", "uname", "stat", "file", "du", "df", "tree",
	"cut", "tr", "diff", "cmp", "comm", "basename", "dirname", "realpath", "readlink", "jq", "yq", "less",
	"more", "nl", "od", "hexdump", "xxd", "md5sum", "sha1sum", "sha256sum", "sha512sum", "b2sum", "cksum",
	"base64", "column", "fold", "fmt", "paste", "join", "rev", "seq", "sleep", "test", "[", "printenv",
	"env", "nproc", "free", "uptime", "tac", "strings", "expr", "hostname", "groups", "locale", "getconf",
	"ps", "pgrep", "lsof", "whereis", "apropos", "man", "info", "help", "bat", "fd", "exa", "eza", "sha224sum",
	"sha384sum", "numfmt", "tsort", "look", "dircolors", "tty", "arch", "logname", "users", "who",
	"w", "last", "lscpu", "lsblk", "lsmod", "vmstat", "iostat", "mpstat", "nm", "objdump", "readelf",
	"size", "c++filt", "cd", "pushd", "popd", "set", "unset", "export", "declare", "local",
	"read", "wait", "shift", "exit", "return", ":", "alias", "hash", "history", "jobs", "umask", "ulimit",
}

func safeCmd(j *judge, name string, args []arg, dir string, in stdin) {
	j.add(allow, "safe.read-only", "", "%s only reads", name)
}

// targetsCmd judges a command whose every operand is written.
func targetsCmd(takesValue string, long ...string) handler {
	return func(j *judge, name string, args []arg, dir string, in stdin) {
		j.writes(name, operands(args, takesValue, long...), dir)
	}
}

func inDirCmd(j *judge, name string, args []arg, dir string, in stdin) {
	if name == "patch" && hasFlag(args, "e", "ed") {
		j.add(prompt, "exec.inline-code", "", "patch -e feeds the patch to ed, whose ! command runs shell commands")
	}
	if name == "patch" {
		if o, ok := optionValue(args, 'o', "output"); ok {
			j.write("patch -o", o, dir)
		}
	}
	if d, ok := optionValue(args, 'd', "directory"); ok {
		j.write(name, d, dir)
		return
	}
	j.write(name, arg{s: dir}, dir)
}

func rmCmd(j *judge, name string, args []arg, dir string, in stdin) {
	ops := operands(args, "", "interactive")
	if hasFlag(args, "rR", "recursive") || hasFlag(args, "", "no-preserve-root") {
		for _, op := range ops {
			if j.rootish(op, dir) {
				j.add(deny, "destructive.rm-root", "", "rm -r %s deletes a whole system, home or workspace tree", op.s)
			}
		}
	}
	j.writes(name, ops, dir)
}

func shredCmd(j *judge, name string, args []arg, dir string, in stdin) {
	j.writes(name, operands(args, "ns", "iterations", "size", "random-source"), dir)
}

var setuidNumeric = regexp.MustCompile(`^[0-7]?[2467][0-7]{3}$`)
var setuidSymbolic = regexp.MustCompile(`^[ugoa]*[+=][rwxXtugo]*s`)

func chmodCmd(j *judge, name string, args []arg, dir string, in stdin) {
	ops := operands(args, "", "reference")
	files := ops
	if !hasFlag(args, "", "reference") && len(ops) > 0 {
		mode := ops[0]
		files = ops[1:]
		for _, m := range strings.Split(mode.s, ",") {
			if !mode.dyn && (setuidNumeric.MatchString(m) || setuidSymbolic.MatchString(m)) {
				j.add(deny, "priv.setuid", "", "chmod %s sets a setuid or setgid bit: a way to gain privileges", mode.s)
			}
		}
	}
	j.recursiveRoot(name, args, files, dir)
	j.writes(name, files, dir)
}

func ownerCmd(j *judge, name string, args []arg, dir string, in stdin) {
	ops := operands(args, "", "reference", "from")
	files := ops
	if !hasFlag(args, "", "reference") && len(ops) > 0 {
		files = ops[1:]
	}
	j.recursiveRoot(name, args, files, dir)
	j.writes(name, files, dir)
}

func (j *judge) recursiveRoot(name string, args, files []arg, dir string) {
	if !hasFlag(args, "R", "recursive") {
		return
	}
	for _, f := range files {
		// The workspace's own files are the user's to re-mode: chmod -R u+w .
		// is ordinary; the fs rules still judge the write.
		if j.rootish(f, dir) && !within(j.abs(f.s, dir), j.in.Workspace) {
			j.add(deny, "destructive.chmod-root", "", "%s -R %s changes every file of a system, home or workspace tree", name, f.s)
		}
	}
}

func copyCmd(j *judge, name string, args []arg, dir string, in stdin) {
	takes := "tS"
	if name == "install" {
		takes = "tSmogb"
		if p, ok := longValue(args, "strip-program", 3); ok {
			j.runsCommand("install --strip-program", p, dir)
		}
	}
	ops := operands(args, takes, "target-directory", "suffix", "mode", "owner", "group", "backup")
	if t, ok := optionValue(args, 't', "target-directory"); ok {
		j.write(name, t, dir)
		return
	}
	if name == "install" && hasFlag(args, "d", "directory") {
		j.writes(name, ops, dir)
		return
	}
	if len(ops) >= 2 {
		j.write(name, ops[len(ops)-1], dir)
	}
}

func moveCmd(j *judge, name string, args []arg, dir string, in stdin) {
	ops := operands(args, "tS", "target-directory", "suffix", "backup")
	if t, ok := optionValue(args, 't', "target-directory"); ok {
		j.write(name, t, dir)
	}
	// Moving a file away writes its directory too.
	j.writes(name, ops, dir)
	if len(ops) > 0 && j.rootish(ops[0], dir) {
		j.add(deny, "destructive.rm-root", "", "%s %s moves a whole system, home or workspace tree away", name, ops[0].s)
	}
}

func linkCmd(j *judge, name string, args []arg, dir string, in stdin) {
	ops := operands(args, "tS", "target-directory", "suffix")
	if t, ok := optionValue(args, 't', "target-directory"); ok {
		j.write(name, t, dir)
		return
	}
	switch {
	case len(ops) >= 2:
		j.write(name, ops[len(ops)-1], dir)
	case len(ops) == 1 && !ops[0].dyn:
		j.write(name, arg{s: baseName(ops[0].s)}, dir)
	case len(ops) == 1:
		j.write(name, ops[0], dir)
	}
}

func ddCmd(j *judge, name string, args []arg, dir string, in stdin) {
	for _, a := range args[1:] {
		if a.dyn {
			if strings.HasPrefix(a.s, "of=") {
				j.write(name, arg{s: a.s[3:], dyn: true}, dir)
			}
			continue
		}
		if v, ok := strings.CutPrefix(a.s, "of="); ok {
			j.write(name, arg{s: v}, dir)
		}
		if v, ok := strings.CutPrefix(a.s, "if="); ok {
			j.readDeniedArg(arg{s: v}, dir)
		}
	}
}

func sortCmd(j *judge, name string, args []arg, dir string, in stdin) {
	if p, ok := longValue(args, "compress-program", 3); ok {
		j.runsCommand("sort --compress-program", p, dir)
		return
	}
	if o, ok := optionValue(args, 'o', "output"); ok {
		j.write(name, o, dir)
		return
	}
	j.add(allow, "safe.read-only", "", "sort writes only to its output")
}

func uniqCmd(j *judge, name string, args []arg, dir string, in stdin) {
	ops := operands(args, "fsw", "skip-fields", "skip-chars", "check-chars", "group", "all-repeated")
	if len(ops) >= 2 {
		j.write(name, ops[1], dir)
		return
	}
	j.add(allow, "safe.read-only", "", "uniq writes only to its output")
}

func tarCmd(j *judge, name string, args []arg, dir string, in stdin) {
	for _, opt := range []struct {
		name string
		min  int
	}{{"to-command", 4}, {"use-compress-program", 5}, {"info-script", 4}, {"new-volume-script", 3}, {"rsh-command", 3}} {
		if v, ok := longValue(args, opt.name, opt.min); ok {
			j.runsCommand("tar --"+opt.name, v, dir)
		}
	}
	for _, a := range args[1:] {
		if long, v, ok := strings.Cut(strings.TrimPrefix(a.s, "--"), "="); ok && !a.dyn && strings.HasPrefix(a.s, "--") && abbrev(long, "checkpoint-action", 12) {
			if c, isExec := strings.CutPrefix(v, "exec="); isExec {
				j.runsCommand("tar --checkpoint-action=exec", arg{s: c}, dir)
			}
		}
	}
	if v, ok := shortValue(args, 'I', "cxtvzjJaprukwWSOmhP"); ok {
		j.runsCommand("tar -I", v, dir)
	}
	if v, ok := shortValue(args, 'F', "cxtvzjJaprukwWSOmhP"); ok {
		j.runsCommand("tar -F", v, dir)
	}
	extract, create := false, false
	for i, a := range args[1:] {
		if a.dyn {
			continue
		}
		switch {
		case a.s == "--extract" || a.s == "--get" || (a.s[0] == '-' && a.s[1:] != "" && a.s[1] != '-' && strings.ContainsRune(a.s, 'x')):
			extract = true
		case a.s == "--create" || a.s == "--append" || a.s == "--update" || (a.s[0] == '-' && len(a.s) > 1 && a.s[1] != '-' && strings.ContainsAny(a.s, "cru")):
			create = true
		case i == 0 && a.s[0] != '-': // old style: tar xzf file
			extract = strings.ContainsRune(a.s, 'x')
			create = strings.ContainsAny(a.s, "cru")
		}
	}
	target := arg{s: dir}
	if c, ok := optionValue(args, 'C', "directory"); ok {
		target = c
	}
	if extract {
		j.write("tar -x", target, dir)
	}
	if create {
		if f, ok := optionValue(args, 'f', "file"); ok && f.s != "-" {
			j.write("tar", f, dir)
		}
	}
	if !extract && !create {
		j.add(allow, "safe.read-only", "", "tar lists an archive")
	}
}

func unzipCmd(j *judge, name string, args []arg, dir string, in stdin) {
	if hasFlag(args, "lvtZ") {
		j.add(allow, "safe.read-only", "", "unzip lists an archive")
		return
	}
	if d, ok := optionValue(args, 'd', ""); ok {
		j.write(name, d, dir)
		return
	}
	j.write(name, arg{s: dir}, dir)
}

func diskCmd(j *judge, name string, args []arg, dir string, in stdin) {
	j.add(deny, "destructive.disk", "", "%s formats, partitions or wipes disks", name)
}

func powerCmd(j *judge, name string, args []arg, dir string, in stdin) {
	j.add(deny, "destructive.power", "", "%s stops or reboots the machine", name)
}

func initCmd(j *judge, name string, args []arg, dir string, in stdin) {
	ops := operands(args, "")
	if len(ops) > 0 && (ops[0].s == "0" || ops[0].s == "6") {
		powerCmd(j, name, args, dir, in)
	}
}

func systemctlCmd(j *judge, name string, args []arg, dir string, in stdin) {
	for _, op := range operands(args, "HMtpsn", "host", "machine", "type", "property", "signal", "lines") {
		switch op.s {
		case "poweroff", "reboot", "halt", "kexec", "suspend", "hibernate", "emergency", "rescue":
			powerCmd(j, name+" "+op.s, args, dir, in)
			return
		}
	}
}

func privCmd(j *judge, name string, args []arg, dir string, in stdin) {
	j.add(deny, "priv.escalation", "", "%s changes privileges or capabilities", name)
}

func baseName(p string) string {
	p = strings.TrimRight(p, "/")
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}
