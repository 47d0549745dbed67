// Package inside is the sandbox helper's side of a run: the code that runs
// in the run's fresh namespaces, builds the sandbox around its own process
// (mounts, rlimits, credentials and capabilities, Landlock, the seccomp
// filter) and then stays the command's init (PID 1), forwarding signals,
// reaping orphans and supervising refused system calls. pkg/sandbox is the
// other side: it starts the helper (cmd/moat-sandbox-helper, whose main is
// [Main]), hands it a [Config] on [ConfigFD] and reads its [Status] reports
// on [StatusFD].
//
// Invariants:
//   - Every step either applies or fails the run: a failure before the
//     command starts is reported as Status.Error and exits 125; nothing
//     is best effort, and the report lists only what is in force.
//   - The seccomp filter goes on last, after privileges are dropped, and
//     no descriptor the helper did not open itself reaches the command.
//   - This package imports only what isolation needs (no bus messages or
//     codec, policy, egress proxy, key store, net or user lookup): each of its imports is
//     loaded and initialised again in every run
//     (cmd/moat-sandbox-helper's TestLinksNoDaemonCode checks it).
package inside
