package cli

import (
	"os"
	"runtime"
)

// OneThread runs the process's Go code on one thread (unless GOMAXPROCS
// says otherwise): a client mostly waits on the bus, and a second one only
// adds a thread woken for every answer (docs/performance.md, sixth round).
// moat and moat-mcp call it first thing.
func OneThread() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}
