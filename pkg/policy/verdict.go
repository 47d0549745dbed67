package policy

import "github.com/moatsec/moat/pkg/wire"

// severity orders verdicts: the strictest wins.
type severity int

const (
	allow severity = iota
	prompt
	deny
)

func (s severity) String() string {
	return [...]string{wire.VerdictAllow, wire.VerdictPrompt, wire.VerdictDeny}[s]
}

// Rules lists every built-in rule id with what it means; ids are stable and
// appear in decisions and audit events.
var Rules = map[string]string{
	"safe.read-only":             "a known read-only command",
	"fs.write-inside":            "writes only inside the profile's writable roots",
	"fs.write-tmp":               "writes only to the sandbox's private /tmp",
	"fs.write-outside":           "writes outside the profile's writable roots",
	"fs.write-protected":         "writes a path the profile keeps read-only (.git/hooks, .git/config, MOAT_HOME, …)",
	"fs.write-unknown":           "writes to a path only known at run time",
	"fs.read-denied":             "reads a path no sandbox may read (credentials, MOAT_HOME)",
	"net.client":                 "a network client under a profile without network",
	"net.package-manager":        "a package manager that downloads, under a profile without network",
	"net.allowed":                "a network client under a profile whose network allows it",
	"net.not-allowed":            "contacts a host outside the profile's network allowlist",
	"net.allowlist-unknown":      "contacts hosts not known in advance; the egress proxy enforces the allowlist",
	"destructive.rm-root":        "recursive delete of /, a home, the workspace root or a system directory",
	"destructive.disk":           "formats, wipes or writes a block device",
	"destructive.fork-bomb":      "a function that calls itself in a pipeline or in the background",
	"destructive.chmod-root":     "recursive permission or owner change of / or a system directory",
	"destructive.power":          "shuts down or reboots the machine",
	"irreversible.work":          "destroys uncommitted work or stashes no sandbox can bring back (git reset --hard, git clean -f, …)",
	"irreversible.history":       "rewrites or deletes remote history (git push --force, --delete, +ref, filter-branch)",
	"priv.escalation":            "gains privileges (sudo, su, doas, pkexec, setcap, …)",
	"priv.setuid":                "sets a setuid or setgid bit",
	"exec.remote-code":           "runs downloaded code (curl … | sh, bash <(curl …))",
	"exec.piped-shell":           "pipes data into a shell or interpreter",
	"exec.inline-code":           "runs inline interpreter code (python -c, perl -e, node -e, …)",
	"shell.dynamic-command":      "the program to run is only known at run time",
	"shell.dynamic-script":       "a shell script only known at run time",
	"shell.parse-error":          "a shell script that does not parse",
	"shell.too-deep":             "scripts nested too deep to judge",
	"default.sandboxed":          "no rule names the command; it runs confined by its profile",
	"default.unknown":            "no rule names the command and policyd is set to ask",
	"file.prefix-rule":           "a prefix_rule from a rules file",
	"file.not-reloaded":          "a rules file changed but does not load: the previous rules are still in force",
	"file.network-rule":          "a network_rule from a rules file, for a host the command names",
	"approval.granted":           "a person approved the command",
	"approval.denied":            "a person denied the command",
	wire.ReasonApprovalTimeout:   "nobody answered the approval in time",
	wire.ReasonApprovalNever:     "the command needs approval and the caller allows none",
	wire.ReasonPolicyTimeout:     "no decision arrived in time",
	wire.ReasonPolicyUnavailable: "policyd is absent or answered garbage",
	wire.ReasonPolicyError:       "policyd could not decide (bad request, unknown profile)",
	wire.ReasonAuditUnavailable:  "the decision could not be recorded",
}
