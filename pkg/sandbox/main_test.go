//go:build linux

package sandbox

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	Init() // the test binary is also the sandbox helper
	os.Exit(m.Run())
}
