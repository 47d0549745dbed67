package main

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// daemonCode is what the helper must not link: every package of it would
// be loaded and initialised again in each run.
var daemonCode = regexp.MustCompile(`nats-io/nats|starlark|klauspost/compress|moat/pkg/(bus|client|policy|policyd|profile|profiled|audit|auditd|sandboxd|bench)(/|$)`)

// TestLinksNoDaemonCode: the helper links none of the bus, policy, audit or
// daemon packages.
func TestLinksNoDaemonCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	var bad []string
	for _, p := range strings.Fields(string(out)) {
		if daemonCode.MatchString(p) {
			bad = append(bad, p)
		}
	}
	if len(bad) > 0 {
		t.Fatalf("moat-sandbox-helper links %v: keep them out of pkg/sandbox's imports", bad)
	}
}
