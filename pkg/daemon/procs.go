package daemon

import (
	"flag"
	"fmt"
	"os"
	"runtime"
)

// DefaultProcs is how many threads a moat daemon runs Go code on at once
// (the runtime's GOMAXPROCS) unless --procs or a valid GOMAXPROCS in the
// environment says otherwise. A daemon's work is short request/response
// hops over the bus: with one P, the goroutine a message wakes runs on the
// thread that read the message; with more, the runtime first wakes another
// thread to take it — a futex wake and, on a virtual machine, an idle vCPU
// brought back — on every hop. On the 2-vCPU machine of docs/performance.md
// one P took $SRV.PING from 0.157 to 0.113 ms p50 and 12 % off a whole run.
// A blocking system call hands the P to another thread within a scheduler
// tick, but a raw one holds it: sandboxd starting a sandbox helper (the
// clone that makes its namespaces) stalls its other goroutines for 2–3 ms,
// which the measurements above include. A host where one daemon has more
// Go work than a core can do raises it.
const DefaultProcs = 1

// ProcsFlag registers --procs on fs. Apply it with SetProcs once parsed.
func ProcsFlag(fs *flag.FlagSet) *int {
	return fs.Int("procs", 0, fmt.Sprintf("threads running the daemon's Go code at once (GOMAXPROCS); 0: the GOMAXPROCS environment variable when set, else %d", DefaultProcs))
}

// SetProcs applies --procs: n > 0 as given; 0 leaves GOMAXPROCS from the
// environment when it is set, else DefaultProcs. A negative n is refused.
func SetProcs(n int) error {
	switch {
	case n < 0:
		return fmt.Errorf("--procs %d: give 1 or more, or 0 for the default", n)
	case n > 0:
		runtime.GOMAXPROCS(n)
	case os.Getenv("GOMAXPROCS") == "":
		runtime.GOMAXPROCS(DefaultProcs)
	}
	return nil
}
