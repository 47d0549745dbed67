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
// Built-in rules (see [Rules] for the ids) combine with rules files in Codex's
// execpolicy format (prefix_rule in Starlark, see [LoadRules]); again the
// strictest verdict wins, so a file can tighten but never loosen a built-in
// deny.
//
// The policy layer explains and filters; the sandbox is what holds. Paths are
// judged after symlinks are resolved, but a file can change between the
// decision and the run — sandboxd enforces the profile regardless.
package policy
