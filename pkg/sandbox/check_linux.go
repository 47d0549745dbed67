//go:build linux

package sandbox

import (
	"fmt"
	"sync"

	"github.com/moatsec/moat/pkg/wire"
	"golang.org/x/sys/unix"
)

// landlockMinABI is the ABI restrictLandlock needs (see landlockABI).
const landlockMinABI = 6

var probe struct {
	once sync.Once
	abi  int
	err  error
}

// LandlockABI is the kernel's Landlock ABI version (0 when Landlock is off).
func LandlockABI() int {
	probe.once.Do(func() {
		v, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
		if errno == 0 {
			probe.abi = int(v)
		}
	})
	return probe.abi
}

// Check reports whether this machine can enforce profile p, naming the
// missing mechanism when it cannot. Run refuses what Check refuses.
func Check(p *wire.Profile) error {
	if abi := LandlockABI(); abi < landlockMinABI {
		return refuse("Landlock ABI %d is required, this kernel offers %d: use Linux 6.12 or later with landlock in the lsm= list", landlockMinABI, abi)
	}
	var attr unix.MountAttr
	if err := unix.MountSetattr(-1, "", 0, &attr); err == unix.ENOSYS {
		return refuse("mount_setattr is missing: Linux 5.12 or later is required")
	}
	if _, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0); err == unix.EINVAL {
		return refuse("seccomp is not built into this kernel")
	}
	if p.Net.Mode != wire.NetNone && p.Net.Mode != wire.NetFull && p.Net.Mode != wire.NetAllowlist {
		return refuse("network mode %q is unknown", p.Net.Mode)
	}
	return nil
}

// Mechanisms describes what this machine enforces, for sandboxd's log.
func Mechanisms() string {
	return fmt.Sprintf("namespaces, landlock v%d (pinned v%d), seccomp, cgroups, no_new_privs, capabilities dropped", LandlockABI(), landlockMinABI)
}
