package inside

// Exit statuses of a command that never ran, as a shell gives them.
const (
	ExitNotFound   = 127
	ExitCannotExec = 126
)

// DefaultPath is the PATH a run gets when its environment names none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// ProxyPort is where the egress proxy listens inside a run's network
// namespace (127.0.0.1).
const ProxyPort = 3128
