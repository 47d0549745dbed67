package policy

import (
	"slices"
	"strings"

	"github.com/moatsec/moat/pkg/wire"
)

// irreversible judges an operation that destroys what no sandbox can bring
// back — uncommitted work, stashes, remote history — by the profile's
// irreversible key: a prompt by default, so that a person reads what would
// be lost; "deny" refuses it, "allow" lets it through.
func (j *judge) irreversible(rule, format string, args ...any) {
	switch j.in.Profile.Irreversible {
	case wire.VerdictAllow:
		return
	case wire.VerdictDeny:
		j.add(deny, rule, "", format, args...)
	default:
		j.add(prompt, rule, "", format, args...)
	}
}

// gitIrreversible finds the git operations that lose work for good.
func (j *judge) gitIrreversible(sub string, args []arg, dir string) {
	ops := operands(args, "m", "message")
	first := ""
	if len(ops) > 0 {
		first = ops[0].s
	}
	switch sub {
	case "reset":
		if hasFlag(args, "", "hard") {
			j.irreversible("irreversible.work", "git reset --hard throws away every uncommitted change to tracked files in %s", j.gitTop(dir))
		}
	case "clean":
		if hasFlag(args, "n", "dry-run") || !hasFlag(args, "f", "force") {
			return
		}
		what := "untracked files"
		if hasFlag(args, "d") {
			what = "untracked files and directories"
		}
		if hasFlag(args, "x") {
			what += ", ignored ones included (build output, .env files, local configuration)"
		} else if hasFlag(args, "X") {
			what = "ignored files (build output, .env files, local configuration)"
		}
		j.irreversible("irreversible.work", "git clean deletes %s in %s; git keeps no copy of them", what, j.gitTop(dir))
	case "checkout":
		if hasFlag(args, "f", "force") {
			j.irreversible("irreversible.work", "git checkout --force throws away uncommitted changes to tracked files")
			return
		}
		if paths := afterDashDash(args); len(paths) > 0 {
			j.irreversible("irreversible.work", "git checkout -- %s overwrites uncommitted changes to those files with the committed version", words(paths))
		} else if slices.ContainsFunc(ops, func(a arg) bool { return a.s == "." || a.s == ":/" }) {
			j.irreversible("irreversible.work", "git checkout . overwrites every uncommitted change under %s", dir)
		}
	case "restore":
		if hasFlag(args, "S", "staged") && !hasFlag(args, "W", "worktree") {
			return // unstaging keeps the changes
		}
		if len(ops) > 0 {
			j.irreversible("irreversible.work", "git restore %s overwrites uncommitted changes to those files", words(ops))
		}
	case "switch":
		if hasFlag(args, "f", "force", "discard-changes") {
			j.irreversible("irreversible.work", "git switch --discard-changes throws away uncommitted changes")
		}
	case "stash":
		switch first {
		case "drop":
			j.irreversible("irreversible.work", "git stash drop deletes a stash and the changes saved in it")
		case "clear":
			j.irreversible("irreversible.work", "git stash clear deletes every stash and the changes saved in them")
		}
	case "branch":
		if hasFlag(args, "D") || (hasFlag(args, "d", "delete") && hasFlag(args, "f", "force")) {
			j.irreversible("irreversible.work", "git branch -D deletes a branch even if its commits are merged nowhere")
		}
	case "push":
		switch {
		case hasFlag(args, "f", "force", "force-with-lease", "force-if-includes", "mirror"):
			j.irreversible("irreversible.history", "git push --force replaces the remote branch: commits others pushed there are lost from it")
		case hasFlag(args, "d", "delete") || slices.ContainsFunc(ops[min(1, len(ops)):], func(a arg) bool { return strings.HasPrefix(a.s, ":") }):
			j.irreversible("irreversible.history", "git push --delete deletes a branch or tag on the remote")
		case slices.ContainsFunc(ops[min(1, len(ops)):], func(a arg) bool { return strings.HasPrefix(a.s, "+") }):
			j.irreversible("irreversible.history", "git push +REF forces the update: commits on the remote branch are lost from it")
		}
	case "reflog":
		if first == "expire" || first == "delete" {
			j.irreversible("irreversible.work", "git reflog %s removes the record that lets lost commits be found again", first)
		}
	case "gc", "prune":
		for _, a := range args[1:] {
			if strings.HasPrefix(a.s, "--prune=now") || (sub == "prune" && a.s == "--expire=now") {
				j.irreversible("irreversible.work", "git %s %s deletes unreachable commits at once, instead of after weeks", sub, a.s)
			}
		}
	case "filter-branch", "filter-repo":
		j.irreversible("irreversible.history", "git %s rewrites every commit of the history it is given", sub)
	}
}

// afterDashDash returns the words after "--".
func afterDashDash(args []arg) []arg {
	for i, a := range args {
		if a.s == "--" && !a.dyn {
			return args[i+1:]
		}
	}
	return nil
}
