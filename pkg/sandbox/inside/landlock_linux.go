//go:build linux

package inside

import (
	"fmt"
	"os"

	"github.com/landlock-lsm/go-landlock/landlock"
)

// landlockABI is the Landlock ABI moat pins: v6 scopes abstract unix sockets
// and signals to the sandbox (so a command can neither reach a host
// process's abstract socket nor signal sandboxd), v4 restricts TCP, v3
// truncation. A kernel without it refuses the run; it is never best effort.
var landlockABI = landlock.V6

// restrictLandlock lets the command list every directory but read and
// execute only what the mount namespace shows it (readRules: a second
// layer under the covering, see reads_linux.go), write only its writable
// roots, the private /tmp and /dev, and, without full network, connect only
// to allowed TCP ports.
func restrictLandlock(cfg *Config) (string, error) {
	conf := landlockABI
	var rules []landlock.Rule
	p := cfg.Profile
	if cfg.Trusted {
		// trusted keeps only the scoping: no reaching out of the sandbox by
		// signal or abstract socket.
		conf.HandledAccessFS, conf.HandledAccessNet = 0, 0
	} else {
		rules = append(rules, readRules(cfg)...)
		var rw []string
		for _, r := range append([]string{"/tmp", "/dev"}, p.FS.Write...) {
			if _, err := os.Stat(r); err == nil {
				rw = append(rw, r)
			}
		}
		rules = append(rules, landlock.RWDirs(rw...).WithRefer().WithIoctlDev())
	}
	what := fmt.Sprintf("landlock:v6 write=%d roots", len(p.FS.Write))
	switch p.Net.Mode {
	case NetFull:
		conf.HandledAccessNet = 0
	case NetAllowlist:
		if cfg.Egress {
			// The network namespace holds loopback and the egress proxy,
			// which enforces the list by name: no port rule to add.
			conf.HandledAccessNet = 0
			break
		}
		ports := p.Net.Ports
		for _, port := range ports {
			rules = append(rules, landlock.ConnectTCP(port))
		}
		what += fmt.Sprintf(" tcp-connect=%v", ports)
	default:
		what += " tcp=none"
	}
	if err := conf.Restrict(rules...); err != nil {
		return "", fmt.Errorf("landlock (ABI v6 or later is required; this kernel must support it): %v", err)
	}
	return what + " scoped=signals,abstract-unix", nil
}
