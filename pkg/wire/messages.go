package wire

import "time"

// Net modes of a profile.
const (
	NetNone      = "none"
	NetFull      = "full"
	NetAllowlist = "allowlist"
)

// Verdicts of a policy decision, from most to least permissive.
const (
	VerdictAllow  = "allow"
	VerdictPrompt = "prompt"
	VerdictDeny   = "deny"
)

// Approval modes of a check request.
const (
	ApprovalNever     = "never"
	ApprovalOnRequest = "on-request"
)

// ResolveRequest asks profiled to turn an intent into a concrete Profile.
type ResolveRequest struct {
	Profile   string `json:"profile"`
	Workspace string `json:"workspace"`
	Cwd       string `json:"cwd,omitempty"`
	SessionID string `json:"session_id,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// Profile is a resolved, concrete policy: every path absolute and cleaned,
// every limit set. It is what policyd judges against and sandboxd enforces.
type Profile struct {
	Name        string   `json:"name"`
	Base        string   `json:"base"` // the built-in it derives from
	Description string   `json:"description,omitempty"`
	Workspace   string   `json:"workspace"`
	Cwd         string   `json:"cwd"`
	FS          FS       `json:"fs"`
	Net         Net      `json:"net"`
	Limits      Limits   `json:"limits"`
	Env         Env      `json:"env"`
	Caches      []Cache  `json:"caches,omitempty"`      // moat-managed toolchain caches, writable
	Source      string   `json:"source"`                // "builtin" or the file that defined it
	NarrowedBy  []string `json:"narrowed_by,omitempty"` // .moat-profile files that narrowed it
	// Irreversible is what policyd makes of operations that destroy work no
	// sandbox can bring back (git reset --hard, git push --force, …):
	// "prompt" (the default when empty), "deny" or "allow".
	Irreversible string `json:"irreversible,omitempty"`
}

// FS says where a command may write and what it may not see or change.
// WriteDeny wins over Write; ReadDeny hides a path entirely.
type FS struct {
	Write     []string `json:"write"`
	ReadDeny  []string `json:"read_deny"`
	WriteDeny []string `json:"write_deny"`
	// WriteDenyGlobs are the write_deny patterns (absolute), whose matches
	// are in WriteDeny: sandboxd checks files created during a run against
	// them afterwards (docs/profiles.md, "Patterns").
	WriteDenyGlobs []string `json:"write_deny_globs,omitempty"`
	// Unguarded are the entries of Guarded, as written there, that this
	// profile leaves writable (a custom profile's release); the others it
	// guards where it writes its workspace (see Guarded).
	Unguarded []string `json:"unguarded,omitempty"`
	// Read are the paths beyond the system, the workspace and the writable
	// roots that the command may read (read-only): the per-user
	// configuration tools read and the profile's read entries. Everything
	// else outside the system is absent from the run (docs/sandbox.md,
	// "What a run sees"); entries that do not exist are skipped.
	Read []string `json:"read,omitempty"`
}

// Cache is one moat-managed toolchain cache directory of a profile: a
// writable root (also in FS.Write) that sandboxd creates, owned by the run's
// user, when it is missing. Name is the cache kind (go, npm, pip, …).
type Cache struct {
	Name string `json:"name"`
	Dir  string `json:"dir"`
}

// Net is the network a command gets: none, full, or an allowlist of
// "host[:port]" entries.
type Net struct {
	Mode  string   `json:"mode"`
	Allow []string `json:"allow,omitempty"`
	Deny  []string `json:"deny,omitempty"` // wins over Allow
}

// Limits bound a run. Zero never means unlimited in a resolved profile.
type Limits struct {
	TimeoutMS   int64 `json:"timeout_ms"`
	MemoryBytes int64 `json:"memory_bytes"`
	Pids        int64 `json:"pids"`
	CPUMS       int64 `json:"cpu_ms"`
	OutputBytes int64 `json:"output_bytes"`
	FileBytes   int64 `json:"file_bytes"`
}

// Timeout is Limits.TimeoutMS as a duration.
func (l Limits) Timeout() time.Duration { return time.Duration(l.TimeoutMS) * time.Millisecond }

// Env is the environment a command sees: the named variables passed through
// from the request, plus fixed ones.
type Env struct {
	Pass []string          `json:"pass"`
	Set  map[string]string `json:"set,omitempty"`
}

// ProfileList answers moat.profile.list.
type ProfileList struct {
	Default  string        `json:"default"`
	Profiles []ProfileInfo `json:"profiles"`
}

// ProfileInfo describes one profile a client may ask for.
type ProfileInfo struct {
	Name        string   `json:"name"`
	Base        string   `json:"base"`
	Description string   `json:"description"`
	Aliases     []string `json:"aliases,omitempty"`
	Write       string   `json:"write"`   // human summary: nothing, workspace, everything, workspace+extra
	Network     string   `json:"network"` // none, full, allowlist
	NetAllow    []string `json:"net_allow,omitempty"`
	NetDeny     []string `json:"net_deny,omitempty"`
	Caches      []string `json:"caches,omitempty"`      // toolchain caches it keeps
	CacheScope  string   `json:"cache_scope,omitempty"` // user or workspace
	Enabled     bool     `json:"enabled"`
	Source      string   `json:"source"`
	// Read is what it reads beyond the system, the workspace and its write
	// roots, as listed (~ for each home); empty for trusted, which reads all.
	Read []string `json:"read,omitempty"`
}

// Reason explains one part of a decision.
type Reason struct {
	Rule    string `json:"rule"`
	Message string `json:"message"`
	Source  string `json:"source,omitempty"` // file:line for rules from files
}

// Decision is policyd's answer for one command.
type Decision struct {
	Verdict   string   `json:"verdict"`
	Reasons   []Reason `json:"reasons"`
	DecidedBy string   `json:"decided_by"`
	ElapsedUS int64    `json:"elapsed_us"`
	// Scope, on an allow a person gave, is what the answer was for
	// (ApprovalAnswer.For: once, run, session, …).
	Scope string `json:"scope,omitempty"`
	// Net, on an allow, are the rules files' network_rule entries, which
	// the run's egress proxy adds to the profile's lists (docs/policy.md,
	// "Network rules").
	Net []NetRule `json:"net,omitempty"`
}

// NetRule is one rules-file network_rule as the egress proxy applies it:
// an allowlist entry (host, host:port, IP:port) and what it decides.
type NetRule struct {
	Entry    string `json:"entry"`
	Decision string `json:"decision"`         // allow, deny or prompt (VerdictAllow, …)
	Source   string `json:"source,omitempty"` // file:line
}

// RunRequest asks sandboxd to resolve, check and run one command.
type RunRequest struct {
	RequestID string            `json:"request_id,omitempty"`
	SessionID string            `json:"session_id,omitempty"`
	Profile   string            `json:"profile"`
	Workspace string            `json:"workspace"`
	Cwd       string            `json:"cwd,omitempty"`
	Argv      []string          `json:"argv"`
	Env       map[string]string `json:"env,omitempty"`
	Stdin     []byte            `json:"stdin,omitempty"`
	TimeoutMS int64             `json:"timeout_ms,omitempty"`
	Stream    bool              `json:"stream,omitempty"`
	// Approval is what a prompt becomes: "on-request" (the default) asks a
	// person and waits, "never" denies it at once.
	Approval string `json:"approval,omitempty"`
}

// Usage is what a run consumed.
type Usage struct {
	MaxRSSBytes int64 `json:"max_rss_bytes"`
	UserUS      int64 `json:"user_us"`
	SysUS       int64 `json:"sys_us"`
}

// RunResult is sandboxd's answer for one run.
type RunResult struct {
	RequestID       string    `json:"request_id"`
	Decision        *Decision `json:"decision,omitempty"`
	ExitCode        int       `json:"exit_code"`
	Signal          string    `json:"signal,omitempty"`
	TimedOut        bool      `json:"timed_out"`
	Stdout          []byte    `json:"stdout"`
	Stderr          []byte    `json:"stderr"`
	StdoutTruncated bool      `json:"stdout_truncated"`
	StderrTruncated bool      `json:"stderr_truncated"`
	DurationUS      int64     `json:"duration_us"`
	Usage           Usage     `json:"usage"`
	Isolation       []string  `json:"isolation"`
	// Refusal says why the command did not run or was stopped (a policy
	// decision, or a limit: memory, pids, cpu, timeout); nil otherwise.
	Refusal *Refusal `json:"refusal,omitempty"`
	// Cancelled says the run was killed because its caller cancelled it or
	// went away; CancelReason says which.
	Cancelled    bool   `json:"cancelled,omitempty"`
	CancelReason string `json:"cancel_reason,omitempty"`
	// QueueUS is how long the allowed run waited in sandboxd's queue for
	// a run slot (0 when one was free).
	QueueUS int64 `json:"queue_us,omitempty"`
	// Quarantined lists what the run left that could make a program run
	// later outside any sandbox (a git hook, a core.fsmonitor, …), moved out
	// of the workspace before this answer (docs/sandbox.md, "After the run").
	Quarantined []Quarantined `json:"quarantined,omitempty"`
	// NetDenied lists the destinations the run's egress proxy refused, once
	// each (docs/sandbox.md, "Network by name").
	NetDenied []NetDenial `json:"net_denied,omitempty"`
	// SyscallsDenied lists the system calls the run's seccomp filter
	// refused, whether or not the command then failed (docs/sandbox.md,
	// "Refused system calls").
	SyscallsDenied []SyscallDenial `json:"syscalls_denied,omitempty"`
	// PathsDenied lists paths a failed command's error output named where
	// the profile's filesystem rules refuse it (wire.PathDenial; a reading
	// of the command's stderr, docs/integrations.md, "Refusals").
	PathsDenied []PathDenial `json:"paths_denied,omitempty"`
}

// NetDenial is one destination a run's egress proxy refused: what, by which
// rule, and how a profile would allow it.
type NetDenial struct {
	Dest   string `json:"dest"` // host:port
	Rule   string `json:"rule"` // net.not-allowed, net.denied, net.address, …
	Reason string `json:"reason"`
	Fix    string `json:"fix"`
}

// Quarantined is one file moved out of a workspace after a run.
type Quarantined struct {
	Path    string `json:"path"`               // where the run left it
	MovedTo string `json:"moved_to,omitempty"` // under MOAT_HOME/quarantine; empty if it could only be deleted
	Reason  string `json:"reason"`
}

// AuditEvent is one record of the audit trail. ID sorts by time (UUIDv7);
// Seq counts from 1 per source instance (one process), so gaps are visible.
type AuditEvent struct {
	ID         string         `json:"id"`
	TS         time.Time      `json:"ts"`
	Source     string         `json:"source"`   // the component: profiled, policyd, ...
	Instance   string         `json:"instance"` // the process; Seq counts per instance
	Seq        uint64         `json:"seq"`
	Kind       string         `json:"kind"`
	SessionID  string         `json:"session_id,omitempty"`
	RequestID  string         `json:"request_id,omitempty"`
	Profile    string         `json:"profile,omitempty"`
	Argv       []string       `json:"argv,omitempty"`
	Cwd        string         `json:"cwd,omitempty"`
	Verdict    string         `json:"verdict,omitempty"`
	Reasons    []Reason       `json:"reasons,omitempty"`
	ExitCode   *int           `json:"exit_code,omitempty"`
	DurationUS int64          `json:"duration_us,omitempty"`
	User       string         `json:"user,omitempty"`
	Detail     map[string]any `json:"detail,omitempty"`
}

// PingReply is one instance's answer to $SRV.PING, as nats.go/micro sends it.
type PingReply struct {
	Name    string `json:"name"`
	ID      string `json:"id"`
	Version string `json:"version"`
	Type    string `json:"type"`
}
