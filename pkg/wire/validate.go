package wire

import "strings"

// Field limits of requests. The body limit (MaxRequestBytes) bounds them
// all together; these name what is wrong with one field.
const (
	MaxIDBytes   = 128  // request and session ids
	MaxArgs      = 8192 // words of argv
	MaxEnvVars   = 1024 // variables of a run's env
	MaxPathBytes = 4096 // workspace, cwd (PATH_MAX)
	MaxNameBytes = 256  // profile names, approval modes
	// MaxProfileEntries bounds the list entries of a resolved profile a
	// check carries, all lists together: what it holds decoded grows with
	// them (16 bytes and more an entry, an empty one too).
	MaxProfileEntries = 65536
)

// validator is a request that checks its own fields. Decode calls it, so
// every service refuses bad input the same way: a 400 naming the field.
type validator interface{ Validate() error }

// CheckID says why an id (request, session) cannot be used, or nil. Ids
// travel in headers and subjects: 1 to MaxIDBytes printable ASCII
// characters, no spaces. Empty is allowed (the caller did not set one).
func CheckID(field, id string) error {
	if len(id) > MaxIDBytes {
		return Errorf(CodeBadRequest, "%s is %d bytes; the limit is %d: use a UUID", field, len(id), MaxIDBytes)
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return Errorf(CodeBadRequest, "%s has byte 0x%02x at %d: use printable ASCII without spaces (a UUID)", field, id[i], i)
		}
	}
	return nil
}

// CheckArgv says why argv cannot be run, or nil: no words, an empty
// command name, too many words, or a NUL byte (no program can receive one).
func CheckArgv(argv []string) error {
	switch {
	case len(argv) == 0:
		return Errorf(CodeBadRequest, "argv is empty: pass the command as a list of words")
	case argv[0] == "":
		return Errorf(CodeBadRequest, "argv[0] is empty: the first word must name the command to run")
	case len(argv) > MaxArgs:
		return Errorf(CodeBadRequest, "argv has %d words; the limit is %d: put long lists in a file", len(argv), MaxArgs)
	}
	for i, a := range argv {
		if j := strings.IndexByte(a, 0); j >= 0 {
			return Errorf(CodeBadRequest, "argv[%d] has a NUL byte at %d, which no program can receive", i, j)
		}
	}
	return nil
}

func checkText(field, s string, limit int) error {
	if len(s) > limit {
		return Errorf(CodeBadRequest, "%s is %d bytes; the limit is %d", field, len(s), limit)
	}
	if i := strings.IndexByte(s, 0); i >= 0 {
		return Errorf(CodeBadRequest, "%s has a NUL byte at %d", field, i)
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Validate checks a run request's fields (called by Decode).
func (r *RunRequest) Validate() error {
	if err := firstErr(CheckID("request_id", r.RequestID), CheckID("session_id", r.SessionID),
		checkText("profile", r.Profile, MaxNameBytes), checkText("workspace", r.Workspace, MaxPathBytes),
		checkText("cwd", r.Cwd, MaxPathBytes), CheckArgv(r.Argv)); err != nil {
		return err
	}
	if r.TimeoutMS < 0 {
		return Errorf(CodeBadRequest, "timeout_ms is %d: give a positive number, or leave it out for the profile's", r.TimeoutMS)
	}
	if len(r.Stdin) > MaxStdinBytes {
		return Errorf(CodeTooLarge, "stdin is %d bytes; the limit is %d (4 MiB): pass a file in the workspace instead", len(r.Stdin), MaxStdinBytes)
	}
	switch r.Approval {
	case "", ApprovalNever, ApprovalOnRequest:
	default:
		return Errorf(CodeBadRequest, "approval %q: want %q or %q (the default)", r.Approval, ApprovalNever, ApprovalOnRequest)
	}
	return checkEnv(r.Env)
}

// Validate checks a check request's fields (called by Decode).
func (r *CheckRequest) Validate() error {
	if err := firstErr(CheckID("request_id", r.RequestID), CheckID("session_id", r.SessionID),
		checkText("workspace", r.Workspace, MaxPathBytes), checkText("cwd", r.Cwd, MaxPathBytes),
		checkText("profile", r.Profile.Name, MaxNameBytes), checkProfileHash(r)); err != nil {
		return err
	}
	argv := CheckArgv(r.Argv)
	if r.Net != nil { // a network ask judges no command
		argv = r.Net.validate(r.Argv)
	}
	if argv != nil {
		return argv
	}
	switch r.Approval {
	case "", ApprovalNever, ApprovalOnRequest:
	default:
		return Errorf(CodeBadRequest, "approval %q: want %q, %q or empty (report a prompt as is)", r.Approval, ApprovalNever, ApprovalOnRequest)
	}
	if r.ApprovalTimeoutMS < 0 {
		return Errorf(CodeBadRequest, "approval_timeout_ms is %d: give a positive number or leave it out", r.ApprovalTimeoutMS)
	}
	if err := checkEnv(r.Env); err != nil {
		return err
	}
	if p := r.Profile.Resolved; p != nil {
		n := len(p.FS.Write) + len(p.FS.ReadDeny) + len(p.FS.WriteDeny) + len(p.FS.WriteDenyGlobs) + len(p.FS.Unguarded) + len(p.FS.Read) +
			len(p.Net.Allow) + len(p.Net.Deny) + len(p.Env.Pass) + len(p.Env.Set) + len(p.Caches) + len(p.NarrowedBy)
		if n > MaxProfileEntries {
			return Errorf(CodeBadRequest, "the profile has %d list entries; the limit is %d: send it by name", n, MaxProfileEntries)
		}
	}
	return nil
}

// checkEnv says why a run's variables cannot be sent, or nil.
func checkEnv(env map[string]string) error {
	if len(env) > MaxEnvVars {
		return Errorf(CodeBadRequest, "env has %d variables; the limit is %d", len(env), MaxEnvVars)
	}
	for k, v := range env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return Errorf(CodeBadRequest, "env name %q: a name is not empty and has no '=' or NUL", k)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return Errorf(CodeBadRequest, "env %s has a NUL byte in its value", k)
		}
	}
	return nil
}

// Validate checks a resolve request's fields (called by Decode).
func (r *ResolveRequest) Validate() error {
	return firstErr(CheckID("request_id", r.RequestID), CheckID("session_id", r.SessionID),
		checkText("profile", r.Profile, MaxNameBytes), checkText("workspace", r.Workspace, MaxPathBytes),
		checkText("cwd", r.Cwd, MaxPathBytes))
}
