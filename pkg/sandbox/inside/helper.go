package inside

// Arg0 is argv[0] of the re-executed helper: how [Init] recognises it.
// Its other arguments are [OwnNetArg] when it was started in a network
// namespace of its own, then the files it writes "0" to as it starts,
// joining its run's cgroup itself (v1 "tasks": its own thread, without the
// global lock and RCU grace period moving a whole process takes; v2
// "cgroup.procs"), before its configuration arrives.
const Arg0 = "moat-sandbox-init"

// OwnNetArg tells a helper it has a network namespace of its own, whose
// loopback it brings up before its configuration arrives.
const OwnNetArg = "-own-net"

// Config is what the parent hands the helper on fd 3.
type Config struct {
	Argv     []string `json:"argv"`
	Env      []string `json:"env"`
	Dir      string   `json:"dir"`
	Profile  *Profile `json:"profile"`
	UID      int      `json:"uid"`
	GID      int      `json:"gid"`
	NoNet    bool     `json:"no_net"`
	Egress   bool     `json:"egress"` // a network namespace whose way out is the egress proxy
	UserNS   bool     `json:"user_ns"`
	Trusted  bool     `json:"trusted"`
	TmpBytes int64    `json:"tmp_bytes"`
	// Placeholders are protected paths the parent created, empty, so they can
	// be mounted read-only: they did not exist and must not be created.
	Placeholders []string `json:"placeholders"`
	// Seccomp is the filter the helper loads last (see Filter): the
	// prelude's for the run's kind (NoNet), not part of the configuration.
	Seccomp *Filter `json:"-"`
}

// Prelude is what sandboxd hands a helper on fd 3 as it starts it, before
// any configuration: the seccomp filter of each kind of run, which depends
// on nothing the run asks for, so a pooled helper has decoded it before
// the request (the filters are ~4 KB of JSON, three quarters of a
// configuration). The configuration that follows it says which applies.
type Prelude struct {
	Net   *Filter `json:"net"`    // a run with network (full, an allowlist, egress)
	NoNet *Filter `json:"no_net"` // a run whose network is none
}

// Status is what the helper reports on fd 4, one JSON value a line:
// the isolation in force just before it starts the command (or instead an
// error, when a step failed), then, as the command's init, each new kind of
// system call the seccomp filter refused as it happens, and how the command
// ended.
type Status struct {
	Isolation []string       `json:"isolation,omitempty"`
	Error     string         `json:"error,omitempty"`
	Refused   *SyscallDenial `json:"refused,omitempty"`
	Exit      *Exit          `json:"exit,omitempty"`
}

// Exit is the command's own end, as its init reaped it.
type Exit struct {
	Code   int   `json:"code"`             // the exit status, or 128+signal
	Signal int   `json:"signal,omitempty"` // the signal that killed it
	Usage  Usage `json:"usage"`
	// Refused is every kind of system call the seccomp filter refused.
	Refused []SyscallDenial `json:"refused,omitempty"`
	// Alone: before this report the init killed and reaped every other
	// process of its namespace and closed its ends of the output pipes;
	// nothing of the run is left but the init, which exits next. sandboxd
	// may answer without waiting for that exit (the tearing down of the
	// namespaces). False when the init could not make sure of it: sandboxd
	// then waits for its exit, which ends the rest (the kernel's doing).
	Alone bool `json:"alone,omitempty"`
}

// Fixed file descriptors of the helper.
const (
	ConfigFD = 3
	StatusFD = 4
)
