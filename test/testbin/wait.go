package testbin

import (
	"hash/fnv"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Eventually calls f every 100 ms until it returns nil, or fails the test
// with what and f's last error once within has passed. within is a bound
// for a loaded machine, not a measurement: make it generous.
func Eventually(t testing.TB, within time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// FreePort returns a loopback port that was free a moment ago and that
// this process has not handed out before, below the kernel's ephemeral
// range (32768 and up) so that no outgoing connection of another process
// takes it before a server binds it, or while a server is down between a
// kill and its restart. A server may bind its port seconds after it was
// picked (a busd in a cluster starts its monitor once its store is open),
// and go test runs several packages' test binaries at once: each binary
// draws from a slice of the range of its own (by its name), so two of them
// rarely pick the same port in that time.
func FreePort(t testing.TB) int {
	t.Helper()
	given.Lock()
	defer given.Unlock()
	base := portLow + portSliceOf(filepath.Base(os.Args[0]))*portSlice
	for try := range 400 {
		port := base + rand.IntN(portSlice)
		if try >= 200 { // the slice is crowded: anywhere in the range
			port = portLow + rand.IntN(portSlices*portSlice)
		}
		if !given.ports[port] && PortFree(port) {
			given.ports[port] = true
			return port
		}
	}
	t.Fatalf("no free loopback port between %d and %d", portLow, portLow+portSlices*portSlice)
	return 0
}

// The range FreePort draws from, cut into slices of one test binary each.
const (
	portLow    = 20000
	portSlice  = 1000
	portSlices = 12
)

// given is every port FreePort handed out in this process.
var given = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// portSliceOf is the slice of the range the test binary name draws from.
func portSliceOf(name string) int {
	h := fnv.New32a()
	h.Write([]byte(name))
	return int(h.Sum32() % portSlices)
}

// PortFree reports whether a loopback port can be listened on now.
func PortFree(port int) bool {
	l, err := net.Listen("tcp", Addr(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// Addr is the loopback HOST:PORT of port.
func Addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
