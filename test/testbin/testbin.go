// Package testbin is what the end-to-end suites (test/e2e, test/chaos,
// test/cluster) and the daemon tests share to run moat's real parts: one
// fresh build of ./cmd/..., child processes in a group of their own with
// their output kept for failure messages, free loopback ports, and waiting
// for a condition with a generous bound (never a measurement).
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// Root is the repository's root directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Build builds every binary of ./cmd/... into a fresh directory whose name
// starts with prefix, as users get them (scripts/build); remove it when the
// tests end.
func Build(prefix string) (string, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	build := exec.Command("scripts/build", dir)
	build.Dir = Root()
	if out, err := build.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("build binaries: %v\n%s", err, out)
	}
	return dir, nil
}

// Output keeps what a child process writes, safe to read while it runs.
type Output struct {
	mu  sync.Mutex
	out strings.Builder
}

func (o *Output) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.out.Write(b)
}

// String is everything written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.out.String()
}

// Tail is the last n bytes of s, marked as cut when it is.
func Tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
