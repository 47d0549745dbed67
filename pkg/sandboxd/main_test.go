package sandboxd_test

import (
	"os"
	"testing"

	"github.com/moatsec/moat/pkg/sandbox"
)

func TestMain(m *testing.M) {
	sandbox.Init() // the test binary is also the sandbox helper
	os.Exit(m.Run())
}
