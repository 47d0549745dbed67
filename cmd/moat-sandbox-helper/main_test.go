package main

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/moatsec/moat/test/testbin"
)

// daemonCode is what the helper must not link: every package of it would
// be loaded and initialised again in each run.
// Nor sandboxd's side of a run: the egress proxy (net/http, TLS), the
// key store (nkeys), git config, user lookup, pkg/sandbox itself, nor the
// bus's messages and codec (pkg/wire, msgpack) or the net package, nor the
// seccomp assembler and its syscall tables (sandboxd assembles the filter).
var daemonCode = regexp.MustCompile(`nats-io/|starlark|klauspost/compress|moat/pkg/(bus|client|policy|policyd|profile|profiled|audit|auditd|sandboxd|bench|egress|home|gitconfig|sandbox|wire)$|vmihailenco/msgpack|go-seccomp-bpf|golang.org/x/net/|moat/pkg/(bus|client|policy|policyd|profile|profiled|audit|auditd|sandboxd|bench)/|^(net|net/http|crypto/tls|os/user)$`)

// TestLinksNoDaemonCode: the helper links none of the bus, policy, audit or
// daemon packages, nor those only sandboxd's side of a run needs.
func TestLinksNoDaemonCode(t *testing.T) {
	if bad := testbin.LinkedMatching(t, daemonCode); len(bad) > 0 {
		t.Fatalf("moat-sandbox-helper links %v: keep them out of pkg/sandbox/inside's imports", bad)
	}
}

// TestStatic: the helper links no cgo (runtime/cgo, or any package with C
// files): it changes the capabilities and the Landlock domain of all its
// threads through syscall.AllThreadsSyscall, which the Go runtime refuses
// in a binary linked with cgo (so every run would be refused), and a
// static binary starts without the dynamic loader.
func TestStatic(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if or .CgoFiles (eq .ImportPath \"runtime/cgo\")}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	if cgo := strings.Fields(string(out)); len(cgo) > 0 {
		t.Fatalf("moat-sandbox-helper links cgo through %v: keep them out of pkg/sandbox/inside's imports", cgo)
	}
}
