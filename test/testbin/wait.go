package testbin

import (
	"math/rand/v2"
	"net"
	"strconv"
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

// FreePort returns a loopback port that was free a moment ago, below the
// kernel's ephemeral range (32768 and up) so that no outgoing connection of
// another process takes it before a server binds it, or while a server is
// down between a kill and its restart.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		if port := 20000 + rand.IntN(12000); PortFree(port) {
			return port
		}
	}
	t.Fatal("no free loopback port between 20000 and 32000")
	return 0
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
