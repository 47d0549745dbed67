package daemon

import (
	"runtime"
	"testing"
)

// TestSetProcs: --procs sets GOMAXPROCS; without it a daemon runs on
// DefaultProcs unless GOMAXPROCS is in its environment; a negative count
// is refused and changes nothing.
func TestSetProcs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	runtime.GOMAXPROCS(2)
	t.Setenv("GOMAXPROCS", "")
	if err := SetProcs(0); err != nil || runtime.GOMAXPROCS(0) != DefaultProcs {
		t.Errorf("default: %v, GOMAXPROCS %d, want %d", err, runtime.GOMAXPROCS(0), DefaultProcs)
	}
	if err := SetProcs(3); err != nil || runtime.GOMAXPROCS(0) != 3 {
		t.Errorf("--procs 3: %v, GOMAXPROCS %d", err, runtime.GOMAXPROCS(0))
	}
	t.Setenv("GOMAXPROCS", "3") // as the runtime read it at start
	if err := SetProcs(0); err != nil || runtime.GOMAXPROCS(0) != 3 {
		t.Errorf("GOMAXPROCS=3 in the environment: %v, GOMAXPROCS %d, want it kept", err, runtime.GOMAXPROCS(0))
	}
	if err := SetProcs(-1); err == nil || runtime.GOMAXPROCS(0) != 3 {
		t.Errorf("--procs -1: %v, GOMAXPROCS %d; want an error and nothing changed", err, runtime.GOMAXPROCS(0))
	}
}
