// Package policy decides allow, prompt or deny for a command under a resolved
// profile, and explains every decision with stable rule ids. It is policyd's
// logic, with no bus in it.
//
// The whole command is judged, not its first word: launchers (env, sudo,
// timeout, xargs, …) are unwrapped, scripts given to a shell with -c, to eval
// or in a here-doc are parsed with mvdan.cc/sh and every simple command,
// pipeline, redirect, substitution, subshell and function body in them is
// judged. The strictest verdict wins. What cannot be known statically (a
// program named by a variable, a script that does not parse) is at least a
// prompt.
//
// A command is judged by everything it can be told to do: options,
// embedded scripts (sed's e and w, find -exec, awk's system) and
// environment variables that make it run a program or write a file are
// judged as what they run and write. Operations that destroy work no
// sandbox brings back (git reset --hard, git push --force, …) are a prompt
// whose reason says what would be lost, unless the profile's irreversible
// key says deny or allow.
//
// Built-in rules (see [Rules] for the ids) combine with rules files in
// Codex's execpolicy format, read as Codex reads them (prefix_rule,
// host_executable and network_rule in starlark-rust's extended dialect; see
// [LoadRules] and [Ruleset.Check], which answers as codex execpolicy check);
// again the strictest verdict wins, so a file can tighten but never loosen a
// built-in deny.
//
// The policy layer explains and filters; the sandbox is what holds. Paths are
// judged after symlinks are resolved, but a file can change between the
// decision and the run — sandboxd enforces the profile regardless.
package policy
