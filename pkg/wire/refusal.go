package wire

import (
	"fmt"
	"strings"
)

// Layers that refuse a command: the policy before it runs, the kernel's
// limits while it runs.
const (
	LayerPolicy  = "policy"  // policyd's decision (Rule is the rule id)
	LayerMemory  = "memory"  // the cgroup memory limit: the OOM killer
	LayerPids    = "pids"    // the cgroup pids limit: fork refused
	LayerCPU     = "cpu"     // the CPU-time budget: killed
	LayerTimeout = "timeout" // the wall-clock timeout: killed
	LayerSeccomp = "seccomp" // the sandbox's seccomp filter refused system calls (Syscalls)
	// LayerFS: the command failed naming paths the sandbox's filesystem
	// rules keep from it (Paths; read from its error output, see PathDenial).
	LayerFS = "filesystem"
)

// What a refusal refused.
const (
	RefusedCommand = "command" // the command, or a part of it (Target)
	RefusedPath    = "path"
	RefusedHost    = "host"
	RefusedLimit   = "limit" // Target says which limit and its value
	RefusedSyscall = "syscall"
)

// Refusal says why moat did not run a command, or stopped it, in a form a
// program (or a model) can act on: what was refused, by which layer, what
// would allow it, and one plain sentence. It is the same record in moat run
// --json, the Go client, moat mcp and moat hook claude-code.
//
// Policy refusals are exact: Rule is the policy rule id that decided. A run
// the kernel stopped says which limit did it (memory, pids, cpu, timeout).
// A command that failed after the sandbox's seccomp filter refused it
// system calls says which (LayerSeccomp, Syscalls). A file the sandbox keeps
// read-only or hidden fails inside the command with EROFS, EACCES or ENOENT,
// which the kernel tells the command, not moat: a command that failed
// naming such a path in its error output gets the rule that covers it
// (LayerFS, Paths; docs/integrations.md).
type Refusal struct {
	Layer   string   `json:"layer"`
	Rule    string   `json:"rule,omitempty"`   // policy rule id, or the cgroup counter that fired
	Kind    string   `json:"kind"`             // command, path, host, limit
	Target  string   `json:"target,omitempty"` // the command judged, or the limit and its value
	Source  string   `json:"source,omitempty"` // rules file:line for a rule from a file
	Allow   Remedy   `json:"allow"`
	Message string   `json:"message"`           // one plain sentence
	Reasons []Reason `json:"reasons,omitempty"` // every reason of the decision, strictest first
	// Syscalls are the system calls the seccomp filter refused (LayerSeccomp).
	Syscalls []SyscallDenial `json:"syscalls,omitempty"`
	// Paths are the paths the filesystem rules keep from the command (LayerFS).
	Paths []PathDenial `json:"paths,omitempty"`
}

// PathDenial is a path a failed command's error output named, with the
// error, where the run's filesystem rules refuse that access: which rule,
// and the profile entry behind it. It is read from the command's own
// stderr (the kernel reports these errors to the command only), so it is
// found only when the command printed the path with the system's message,
// and it can be made up by the command; it only ever names rules the
// profile has. A run lists at most MaxPathDenials.
type PathDenial struct {
	Path   string `json:"path"`
	Access string `json:"access"`          // write or read
	Error  string `json:"error"`           // EROFS, EACCES or ENOENT, as the command printed it
	Rule   string `json:"rule"`            // write, write_deny, read_deny or read: the profile key
	Entry  string `json:"entry,omitempty"` // the write_deny or read_deny entry that covers it
	Reason string `json:"reason"`
}

// MaxPathDenials bounds the paths a run's refusal names.
const MaxPathDenials = 8

// Line is the denial for a person or a model reading stderr: "filesystem
// refused write to /etc/motd (profile workspace-write: not under the
// writable roots)".
func (d PathDenial) Line(source string) string {
	return fmt.Sprintf("filesystem refused %s %s %s (%s: %s)", d.Access, map[bool]string{true: "to", false: "of"}[d.Access == "write"], d.Path, source, d.Reason)
}

// FSRefusal is the refusal of a run that failed naming paths the
// filesystem rules of its profile (named) keep from it.
func FSRefusal(profile string, denied []PathDenial) *Refusal {
	if len(denied) == 0 {
		return nil
	}
	top := denied[0]
	r := &Refusal{Layer: LayerFS, Rule: top.Rule, Kind: RefusedPath, Target: top.Path, Source: "profile " + profile, Paths: denied}
	fix := "ask the user for a profile that allows it if it is needed; do not try to get around it"
	switch top.Rule {
	case "write":
		fix = "write inside the workspace (or /tmp) instead, or ask the user for a profile that makes it writable"
	case "read":
		fix = "use files inside the workspace, or ask the user to add the path to the profile's read set"
	}
	r.Message = fmt.Sprintf("the command failed at %s %s (%s): the sandbox's filesystem rules keep it from the command (%s), which is likely why it failed, not a bug in the command; %s.",
		map[string]string{"write": "writing", "read": "reading"}[top.Access], top.Path, top.Error, top.Reason, fix)
	return r
}

// SyscallDenial is one kind of system call the sandbox's seccomp filter
// refused a run (with EPERM), as its seccomp supervisor saw it: the call,
// the integer argument that made it refused where one did, how often, which
// program called it first, and what the profile forbids. A run lists at most
// MaxSyscallDenials kinds.
type SyscallDenial struct {
	Syscall string `json:"syscall"`           // mount, ptrace, socket, …
	Detail  string `json:"detail,omitempty"`  // the refused argument: AF_INET, CLONE_NEWUSER, TIOCSTI
	Count   int    `json:"count"`             // calls refused
	Process string `json:"process,omitempty"` // the first caller's command name (its comm)
	Reason  string `json:"reason"`            // what the sandbox forbids
}

// MaxSyscallDenials bounds the kinds of refused system calls a run reports.
const MaxSyscallDenials = 16

// String is the denial as one line's worth: "ptrace ×3 by strace".
func (d SyscallDenial) String() string {
	s := d.Syscall
	if d.Detail != "" {
		s += "(" + d.Detail + ")"
	}
	s += fmt.Sprintf(" ×%d", d.Count)
	if d.Process != "" {
		s += " by " + d.Process
	}
	return s
}

// Line is the denial for a person or a model reading stderr, under the
// refusal's source: "seccomp refused ptrace ×3 by strace (profile
// workspace-write: no tracing or reading other processes)".
func (d SyscallDenial) Line(source string) string {
	return fmt.Sprintf("seccomp refused %s (%s: %s)", d, source, d.Reason)
}

// SeccompRefusal is the refusal of a run that failed after the seccomp
// filter of its profile (named) refused it the system calls denied.
func SeccompRefusal(profile string, denied []SyscallDenial) *Refusal {
	if len(denied) == 0 {
		return nil
	}
	top := denied[0]
	r := &Refusal{Layer: LayerSeccomp, Rule: "seccomp", Kind: RefusedSyscall, Target: top.Syscall,
		Source: "profile " + profile, Syscalls: denied}
	more := ""
	if len(denied) > 1 {
		more = fmt.Sprintf(" (and %d other kinds of system call)", len(denied)-1)
	}
	fix := "no moat profile allows it, so do not retry it another way: do the work without it, or ask the user to run it outside moat"
	if top.Syscall == "socket" || top.Syscall == "socketpair" {
		fix = "a profile with network (net allowlist or full) would allow it; ask the user if it is needed"
	}
	r.Message = fmt.Sprintf("the command failed after the sandbox refused it the system call %s%s (%s); that is likely why it failed, and it is a sandbox restriction, not a bug in the command: %s.",
		top, more, top.Reason, fix)
	return r
}

// Remedy is what would let the refused command run.
type Remedy struct {
	// Approval: a person may approve this exact command (the policy asked);
	// false when the policy denies it outright.
	Approval bool `json:"approval"`
	// Profile is a profile whose policy allows the command, when one does;
	// whoever starts the agent decides whether to grant it.
	Profile string `json:"profile,omitempty"`
	// Limit names the profile limit to raise ([limits] in profiles.toml).
	Limit string `json:"limit,omitempty"`
}

// RefusalOf is the refusal a decision carries, or nil when it allows.
// Profile suggestions are left to the caller (client.Explain probes them).
func RefusalOf(argv []string, d *Decision) *Refusal {
	if d == nil || d.Verdict == VerdictAllow {
		return nil
	}
	r := &Refusal{Layer: LayerPolicy, Kind: RefusedCommand, Target: strings.Join(argv, " "), Reasons: d.Reasons}
	if len(argv) == 3 && (argv[0] == "bash" || argv[0] == "sh") && argv[1] == "-c" {
		r.Target = argv[2] // a shell script: the script is what was judged
	}
	if len(d.Reasons) > 0 {
		top := d.Reasons[0]
		r.Rule, r.Source = top.Rule, top.Source
		switch {
		case strings.HasPrefix(top.Rule, "fs."):
			r.Kind = RefusedPath
		case strings.HasPrefix(top.Rule, "net."):
			r.Kind = RefusedHost
		}
	}
	r.Allow.Approval = d.Verdict == VerdictPrompt || r.Rule == ReasonApprovalTimeout || r.Rule == ReasonApprovalNever
	r.Message = r.sentence(d)
	return r
}

func (r *Refusal) sentence(d *Decision) string {
	why := "no reason was given"
	if len(d.Reasons) > 0 {
		why = strings.TrimSuffix(d.Reasons[0].Message, ".")
	}
	switch {
	case r.Rule == ReasonPolicyUnavailable || r.Rule == ReasonPolicyTimeout || r.Rule == ReasonPolicyError:
		return fmt.Sprintf("moat could not judge the command (%s: %s), so it did not run; this is not a network or command failure, and retrying the same command another way will not help.", r.Rule, why)
	case d.Verdict == VerdictPrompt:
		return fmt.Sprintf("moat's policy needs a person to approve this command (%s: %s); it did not run.", r.Rule, why)
	case r.Allow.Approval:
		return fmt.Sprintf("moat's policy needed a person's approval and none came (%s: %s); the command did not run.", r.Rule, why)
	}
	return fmt.Sprintf("moat's policy refused this command (%s: %s); it did not run: this is a policy decision, not a failure of the command or the network, so do not retry it another way; ask the user if it is needed.", r.Rule, why)
}

// LimitRefusal is the refusal for a run the kernel stopped at a limit of its
// profile: layer is LayerMemory, LayerPids, LayerCPU or LayerTimeout.
func LimitRefusal(layer string, l Limits) *Refusal {
	r := &Refusal{Layer: layer, Kind: RefusedLimit}
	switch layer {
	case LayerMemory:
		r.Rule, r.Allow.Limit = "memory.events:oom_kill", "memory"
		r.Target = fmt.Sprintf("memory_bytes=%d", l.MemoryBytes)
		r.Message = fmt.Sprintf("the command was killed by the kernel's OOM killer: it used more than its %d MiB memory limit; use less memory or ask for a profile with a higher memory limit.", l.MemoryBytes>>20)
	case LayerPids:
		r.Rule, r.Allow.Limit = "pids.events:max", "pids"
		r.Target = fmt.Sprintf("pids=%d", l.Pids)
		r.Message = fmt.Sprintf("the command hit its limit of %d processes and threads, so the kernel refused to start more (fork failed with EAGAIN); run fewer at once or ask for a profile with a higher pids limit.", l.Pids)
	case LayerCPU:
		r.Rule, r.Allow.Limit = "cpu.stat:usage_usec", "cpu"
		r.Target = fmt.Sprintf("cpu_ms=%d", l.CPUMS)
		r.Message = fmt.Sprintf("the command was killed after using its CPU-time budget of %s; do less work per command or ask for a profile with a higher cpu limit.", fmtMS(l.CPUMS))
	case LayerTimeout:
		r.Rule, r.Allow.Limit = "timeout", "timeout"
		r.Target = fmt.Sprintf("timeout_ms=%d", l.TimeoutMS)
		r.Message = fmt.Sprintf("the command was killed at its %s timeout; make it finish sooner, or ask for a longer timeout.", fmtMS(l.TimeoutMS))
	default:
		r.Message = "the command was stopped by the sandbox."
	}
	return r
}

func fmtMS(ms int64) string {
	if ms%1000 == 0 {
		return fmt.Sprintf("%ds", ms/1000)
	}
	return fmt.Sprintf("%dms", ms)
}
