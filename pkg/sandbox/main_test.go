//go:build linux

package sandbox

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	Init() // the test binary is also the sandbox helper
	if os.Getenv(poolOwnerEnv) == "1" {
		ownPool() // never returns
	}
	os.Exit(m.Run())
}
