package testbin

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// LinkedMatching lists the packages the main package in the test's
// directory links (go list -deps) whose import path matches re: what a
// program must keep out of its imports.
func LinkedMatching(t testing.TB, re *regexp.Regexp) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	var found []string
	for _, p := range strings.Fields(string(out)) {
		if re.MatchString(p) {
			found = append(found, p)
		}
	}
	return found
}
