// Package sandbox runs one command under a resolved profile with the
// operating system's isolation, and is what actually holds: the policy layer
// explains and filters, the sandbox enforces.
//
// On Linux, [Run] starts the sandbox helper (cmd/moat-sandbox-helper, or
// the current binary when it called [Init]) in fresh mount, pid, ipc, uts
// and network namespaces (trusted
// keeps the host's network; a user namespace when not run as root) inside a
// cgroup with the profile's memory, pids and CPU limits. A profile with
// network reaches out only through its run's egress proxy (netns_linux.go,
// package egress), listening on loopback inside the namespace and served
// from sandboxd's side: the namespace has no other route.
// The helper's code is package inside (this package's subdirectory), which
// imports only what isolation needs and no cgo: the helper is a static
// binary, whose all-thread calls (capabilities, Landlock) go through the Go
// runtime. A helper is spawned with its run's cgroup, which it joins as it
// starts; before its configuration arrives (ahead of the request, for a
// pooled one) it also locks what execve may gain, sets no_new_privs, reads
// the seccomp filters and ignores the signals it forwards: it takes them
// once its configuration arrives, so one sent to an idle helper reaches no
// run. The run's limits are written into the group at the request, before
// the configuration. Then, before it executes the command, the helper, in
// this order:
//
//  1. builds the mount namespace: everything read-only, everything outside
//     the system covered but the workspace, the writable roots and the
//     profile's read set (inside/reads_linux.go), the writable roots writable
//     again, protected paths read-only (placeholders for the ones that do
//     not exist yet), read-denied paths hidden, a private size-limited
//     /tmp, a fresh /proc and a minimal /dev;
//  2. sets rlimits, then drops to the workspace owner with no capability at
//     all (every set empty, securebits locked so execve cannot hand any back);
//  3. enforces Landlock at a pinned ABI (refusing to run when the kernel
//     lacks it) and loads the seccomp filter last;
//  4. starts the command and stays its init: it forwards signals to it,
//     reaps orphans, and when the command ends kills and reaps what it left,
//     closes the output and reports the command's own status. Reported alone
//     so, the run is answered before the init's exit (the namespaces' tearing
//     down), which finish_linux.go awaits off the run's path.
//
// Around the helper, [Run] protects what no profile can list in advance:
// before the run it finds every git directory in the writable workspace
// (watch_linux.go, through a per-workspace cache of directories and their
// ctimes, tree_linux.go) and adds their code-running files to the protected
// paths, with what the guarded names (wire.Guarded, at the workspace's top
// and each repository's) and the write_deny patterns match then
// (patterns_linux.go); after the command ends, before the result, it
// checks what the run's mounts did not hold (scan_linux.go) and moves what
// could make git or another tool run a program on the host into the
// quarantine (quarantine_linux.go).
//
// Every step that fails stops the run with a message naming it: nothing runs
// with less isolation than its profile asks. sandboxd's death kills the
// helper, and the helper is the namespace's init: when it goes, every process
// of the run goes with it.
//
// macOS runs a generated Seatbelt profile through /usr/bin/sandbox-exec;
// other systems refuse every profile but trusted.
package sandbox
