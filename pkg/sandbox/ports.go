package sandbox

import (
	"net"
	"strconv"
)

// allowedPortsOf are the TCP ports an allowlist names (443 for an entry
// without one), in order, once each.
func allowedPortsOf(allow []string) []uint16 {
	seen := map[uint16]bool{}
	var out []uint16
	for _, e := range allow {
		port := uint16(443)
		if _, p, err := net.SplitHostPort(e); err == nil {
			if n, err := strconv.ParseUint(p, 10, 16); err == nil {
				port = uint16(n)
			}
		}
		if !seen[port] {
			seen[port] = true
			out = append(out, port)
		}
	}
	return out
}
