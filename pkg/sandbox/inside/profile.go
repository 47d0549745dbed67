package inside

// Profile is what the helper needs of a run's resolved profile (pkg/wire's
// Profile, copied by sandboxd): its workspace, where the command may read
// and write and what it may not see or change, its network mode and the
// TCP ports an allowlist opens, and two limits. The helper decodes nothing
// else, and links no codec of the bus.
type Profile struct {
	Workspace string `json:"workspace"`
	FS        FS     `json:"fs"`
	Net       Net    `json:"net"`
	Limits    Limits `json:"limits"`
}

// FS is a profile's filesystem rules (wire.FS without the globs, which
// sandboxd has already expanded).
type FS struct {
	Write     []string `json:"write"`
	ReadDeny  []string `json:"read_deny"`
	WriteDeny []string `json:"write_deny"`
	Read      []string `json:"read,omitempty"`
}

// Net is a profile's network: its mode (NetNone, NetFull, NetAllowlist)
// and, for an allowlist, the TCP ports Landlock lets the command connect
// to when no egress proxy enforces the list.
type Net struct {
	Mode  string   `json:"mode"`
	Ports []uint16 `json:"ports,omitempty"`
}

// Limits are the limits the helper sets itself (rlimits); the cgroup
// holds the others.
type Limits struct {
	CPUMS     int64 `json:"cpu_ms"`
	FileBytes int64 `json:"file_bytes"`
}

// Network modes, as pkg/wire names them.
const (
	NetNone      = "none"
	NetFull      = "full"
	NetAllowlist = "allowlist"
)

// SyscallDenial is one kind of system call the seccomp filter refused (the
// fields of wire.SyscallDenial, which sandboxd converts it to).
type SyscallDenial struct {
	Syscall string `json:"syscall"`
	Detail  string `json:"detail,omitempty"`
	Count   int    `json:"count"`
	Process string `json:"process,omitempty"`
	Reason  string `json:"reason"`
}

// MaxSyscallDenials is how many kinds a run reports at most
// (wire.MaxSyscallDenials).
const MaxSyscallDenials = 16

// Usage is what the command used (the fields of wire.Usage).
type Usage struct {
	MaxRSSBytes int64 `json:"max_rss_bytes"`
	UserUS      int64 `json:"user_us"`
	SysUS       int64 `json:"sys_us"`
}
