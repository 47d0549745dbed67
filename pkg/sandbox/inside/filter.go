package inside

// Filter is a run's seccomp filter as sandboxd assembled it, once per kind
// (pkg/sandbox's seccomp_linux.go), and what its supervisor needs to name
// what the filter hands over.
type Filter struct {
	Program []SockFilter `json:"program"`
	// Names maps the number of every call the filter hands the supervisor
	// to the call's name.
	Names map[int]string `json:"names"`
	// CloneFlagsArg is which argument of clone holds its flags.
	CloneFlagsArg int `json:"clone_flags_arg"`
}

// SockFilter is one classic BPF instruction (struct sock_filter).
type SockFilter struct {
	Code uint16 `json:"c"`
	Jt   uint8  `json:"t"`
	Jf   uint8  `json:"f"`
	K    uint32 `json:"k"`
}
