// Package profile turns an intent — a profile name, a workspace and a working
// directory — into a concrete [wire.Profile]: absolute write roots, the paths a
// command may not read or change, its network and its limits. It is profiled's
// logic, with no bus in it.
//
// Five built-ins (offline, net-readonly, workspace-write, workspace-net,
// trusted) take Codex-style aliases; MOAT_HOME/profiles.toml adds custom
// profiles that extend a built-in. A .moat-profile file found walking up from
// the workspace can only narrow the result: the resolved profile is the meet of
// what was asked and what each file allows (see [Meet]).
//
// Invariants of a resolved profile:
//   - every path is absolute and clean; the workspace and cwd have no symlinks
//     in them and cwd lies inside the workspace;
//   - MOAT_HOME is never readable nor writable, whatever the profile;
//   - protected paths inside a writable workspace ([Protected]: moat's own,
//     the agents' and editors' configuration; the workspace's git directory's
//     config and hooks, or its .git file and the git directories it leads
//     to) are write-denied even when they do not exist yet; a custom profile
//     may release the agents' entries by name, never moat's or git's;
//   - a profile that writes its workspace guards wire.Guarded there (what
//     hook managers and further agents run commands from), but for the
//     entries a custom profile releases, listed in FS.Unguarded;
//   - no workspace holds a home directory (its dotfiles would be writable);
//   - read_deny and write_deny patterns ("**" is zero or more directories,
//     see package glob) are expanded, and write_deny's travel as
//     FS.WriteDenyGlobs for the check after a run;
//   - every limit is set (no zero means unlimited).
package profile
