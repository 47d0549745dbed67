package gitconfig

import "strings"

// runsSuffixes end the names of variables whose value is a program to run:
// filter.<d>.clean/smudge/process, diff.<d>.command/textconv,
// merge.<d>.driver, mergetool.<t>.cmd, credential.helper, gpg.program,
// core.sshCommand, core.editor, sequence.editor, interactive.diffFilter,
// uploadpack.packObjectsHook, hook.<h>.command, sendemail.sendmailCmd, …
var runsSuffixes = []string{"cmd", "command", "program", "helper", "driver", "textconv", "clean", "smudge", "process", "editor", "hook", "filter"}

// Risky says why git could run a program because of e, or "" when it
// cannot. It errs on the side of "risky": a false alarm moves a file aside,
// a miss runs a program on the host.
func Risky(e Entry) string {
	sec, name, v := e.Section, e.Name, strings.TrimSpace(e.Value)
	switch {
	case sec == "include" || sec == "includeif":
		return e.Key() + " reads another file as configuration"
	case sec == "core" && name == "fsmonitor" && !IsBool(e):
		return "core.fsmonitor runs a program"
	case sec == "core" && (name == "hookspath" || name == "askpass" || name == "gitproxy" || name == "pager"):
		return e.Key() + " names a program or hooks to run"
	case sec == "pager" && !IsBool(e):
		return e.Key() + " runs a pager program"
	case sec == "alias" && strings.HasPrefix(v, "!"):
		return e.Key() + " is a shell alias"
	case sec == "submodule" && name == "update" && strings.HasPrefix(v, "!"):
		return e.Key() + " runs a command on update"
	case sec == "remote" && (name == "uploadpack" || name == "receivepack"):
		return e.Key() + " runs a program on fetch or push"
	case sec == "remote" && (name == "url" || name == "pushurl") && strings.HasPrefix(strings.ToLower(v), "ext::"),
		sec == "url" && strings.HasPrefix(strings.ToLower(e.Subsection), "ext::"):
		return e.Key() + " uses the ext:: transport, which runs a command"
	case sec == "protocol" && (e.Subsection == "ext" || (name == "allow" && strings.EqualFold(v, "always"))):
		return e.Key() + " enables the ext:: transport"
	case sec == "diff" && name == "external", sec == "web" && name == "browser", sec == "sendemail" && name == "smtpserver":
		return e.Key() + " names a program to run"
	case name == "path" && (sec == "browser" || sec == "man" || sec == "difftool" || sec == "mergetool"):
		return e.Key() + " names a program to run"
	}
	for _, s := range runsSuffixes {
		if strings.HasSuffix(name, s) {
			return e.Key() + " names a program to run"
		}
	}
	return ""
}

// Check lists why the configuration in data could make git run a program;
// nothing when it cannot. A file it cannot read is a reason itself.
func Check(data []byte) []string {
	entries, err := Parse(data)
	if err != nil {
		return []string{"configuration git may read differently: " + err.Error()}
	}
	var why []string
	for _, e := range entries {
		if r := Risky(e); r != "" {
			why = append(why, r)
		}
	}
	return why
}
