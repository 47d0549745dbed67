//go:build linux

package inside

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// landlockABI is the Landlock ABI moat pins: v6 scopes abstract unix sockets
// and signals to the sandbox (so a command can neither reach a host
// process's abstract socket nor signal sandboxd), v5 device ioctls, v4 TCP,
// v3 truncation. A kernel without it refuses the run; it is never best
// effort.
const landlockABI = 6

// Access rights, as the kernel's uapi names them (include/uapi/linux/landlock.h).
const (
	// fsAll is every filesystem right of ABI v5 and v6: all are handled.
	fsAll = unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE | unix.LANDLOCK_ACCESS_FS_READ_FILE |
		unix.LANDLOCK_ACCESS_FS_READ_DIR | unix.LANDLOCK_ACCESS_FS_REMOVE_DIR | unix.LANDLOCK_ACCESS_FS_REMOVE_FILE |
		unix.LANDLOCK_ACCESS_FS_MAKE_CHAR | unix.LANDLOCK_ACCESS_FS_MAKE_DIR | unix.LANDLOCK_ACCESS_FS_MAKE_REG |
		unix.LANDLOCK_ACCESS_FS_MAKE_SOCK | unix.LANDLOCK_ACCESS_FS_MAKE_FIFO | unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK |
		unix.LANDLOCK_ACCESS_FS_MAKE_SYM | unix.LANDLOCK_ACCESS_FS_REFER | unix.LANDLOCK_ACCESS_FS_TRUNCATE |
		unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
	// fsRead is reading and executing files and listing directories.
	fsRead = unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_READ_DIR
	// fsFile is the rights that apply to a file (not a directory).
	fsFile = unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE | unix.LANDLOCK_ACCESS_FS_READ_FILE |
		unix.LANDLOCK_ACCESS_FS_TRUNCATE | unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
	// fsWrite is what a writable root allows besides fsRead: every way of
	// writing, making and removing, moving files between its directories
	// (refer) and ioctls on the devices in it (/dev).
	fsWrite = unix.LANDLOCK_ACCESS_FS_WRITE_FILE | unix.LANDLOCK_ACCESS_FS_REMOVE_DIR | unix.LANDLOCK_ACCESS_FS_REMOVE_FILE |
		unix.LANDLOCK_ACCESS_FS_MAKE_CHAR | unix.LANDLOCK_ACCESS_FS_MAKE_DIR | unix.LANDLOCK_ACCESS_FS_MAKE_REG |
		unix.LANDLOCK_ACCESS_FS_MAKE_SOCK | unix.LANDLOCK_ACCESS_FS_MAKE_FIFO | unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK |
		unix.LANDLOCK_ACCESS_FS_MAKE_SYM | unix.LANDLOCK_ACCESS_FS_TRUNCATE | unix.LANDLOCK_ACCESS_FS_REFER |
		unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
	netAll    = unix.LANDLOCK_ACCESS_NET_BIND_TCP | unix.LANDLOCK_ACCESS_NET_CONNECT_TCP
	scopedAll = unix.LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | unix.LANDLOCK_SCOPE_SIGNAL
)

// netPortAttr is struct landlock_net_port_attr, for a rule of type
// ruleNetPort (LANDLOCK_RULE_NET_PORT), which x/sys/unix does not name.
type netPortAttr struct {
	access uint64
	port   uint64
}

const ruleNetPort = 2

// pathRule grants access beneath each of paths (a path missing now is
// skipped when skipGone says so). Directory rights on a file are refused
// by the kernel, and so the run.
type pathRule struct {
	access   uint64
	paths    []string
	skipGone bool
}

// restrictLandlock lets the command list every directory but read and
// execute only what the mount namespace shows it (readRules: a second
// layer under the covering, see reads_linux.go), write only its writable
// roots, the private /tmp and /dev, and, without full network, connect only
// to allowed TCP ports. The ruleset is enforced on every thread of the
// helper (allThreads), which must have no_new_privs already.
func restrictLandlock(cfg *Config) (string, error) {
	handledFS, handledNet := uint64(fsAll), uint64(netAll)
	var rules []pathRule
	p := cfg.Profile
	if cfg.Trusted {
		// trusted keeps only the scoping: no reaching out of the sandbox by
		// signal or abstract socket.
		handledFS, handledNet = 0, 0
	} else {
		rules = append(rules, readRules(cfg)...)
		var rw []string
		for _, r := range append([]string{"/tmp", "/dev"}, p.FS.Write...) {
			if _, err := os.Stat(r); err == nil {
				rw = append(rw, r)
			}
		}
		rules = append(rules, pathRule{access: fsRead | fsWrite, paths: rw})
	}
	what := fmt.Sprintf("landlock:v6 write=%d roots", len(p.FS.Write))
	var ports []uint16
	switch p.Net.Mode {
	case NetFull:
		handledNet = 0
	case NetAllowlist:
		if cfg.Egress {
			// The network namespace holds loopback and the egress proxy,
			// which enforces the list by name: no port rule to add.
			handledNet = 0
			break
		}
		ports = p.Net.Ports
		what += fmt.Sprintf(" tcp-connect=%v", ports)
	default:
		what += " tcp=none"
	}
	if err := enforceLandlock(handledFS, handledNet, rules, ports); err != nil {
		return "", fmt.Errorf("landlock (ABI v6 or later is required; this kernel must support it): %v", err)
	}
	return what + " scoped=signals,abstract-unix", nil
}

// enforceLandlock builds the ruleset and enforces it on every thread.
func enforceLandlock(handledFS, handledNet uint64, rules []pathRule, ports []uint16) error {
	abi, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if errno != 0 {
		return fmt.Errorf("landlock is off in this kernel: %v", errno)
	}
	if abi < landlockABI {
		return fmt.Errorf("this kernel offers ABI v%d", abi)
	}
	attr := unix.LandlockRulesetAttr{Handled_access_fs: handledFS, Handled_access_net: handledNet, Scoped: scopedAll}
	// The fields of ABI v6 only: a kernel takes a shorter struct, and an
	// older one refuses a longer one whose tail it does not know.
	size := unsafe.Offsetof(attr.Scoped) + unsafe.Sizeof(attr.Scoped)
	fd, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), size, 0)
	if errno != 0 {
		return fmt.Errorf("create the ruleset: %v", errno)
	}
	defer unix.Close(int(fd))
	for _, r := range rules {
		access := r.access & handledFS
		if access == 0 {
			continue
		}
		for _, path := range r.paths {
			if err := addPathRule(int(fd), path, access); err != nil {
				if r.skipGone && errors.Is(err, unix.ENOENT) {
					continue
				}
				return fmt.Errorf("rule for %s: %w", path, err)
			}
		}
	}
	for _, port := range ports {
		if handledNet&unix.LANDLOCK_ACCESS_NET_CONNECT_TCP == 0 {
			break
		}
		na := netPortAttr{access: unix.LANDLOCK_ACCESS_NET_CONNECT_TCP, port: uint64(port)}
		if _, _, errno := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, fd, ruleNetPort, uintptr(unsafe.Pointer(&na)), 0, 0, 0); errno != 0 {
			return fmt.Errorf("rule for TCP port %d: %v", port, errno)
		}
	}
	return allThreads(unix.SYS_LANDLOCK_RESTRICT_SELF, fd, 0, 0)
}

// addPathRule grants access beneath path, opened as a path (following its
// links: the rule is on what it leads to).
func addPathRule(ruleset int, path string, access uint64) error {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	pb := unix.LandlockPathBeneathAttr{Allowed_access: access, Parent_fd: int32(fd)}
	if _, _, errno := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, uintptr(ruleset), unix.LANDLOCK_RULE_PATH_BENEATH, uintptr(unsafe.Pointer(&pb)), 0, 0, 0); errno != 0 {
		return errno
	}
	return nil
}

// allThreads makes the system call on every thread of the helper, through
// the Go runtime (syscall.AllThreadsSyscall): the helper stays the
// command's init, and none of its threads may keep what the command lacks.
// The runtime refuses it in a binary linked with cgo (ENOTSUP):
// moat-sandbox-helper links none (TestStatic in cmd/moat-sandbox-helper).
//
//go:uintptrescapes
func allThreads(nr, a1, a2, a3 uintptr) error {
	if _, _, errno := syscall.AllThreadsSyscall(nr, a1, a2, a3); errno != 0 {
		if errno == syscall.ENOTSUP {
			return fmt.Errorf("system call %d on every thread: this binary links cgo, and the sandbox helper must not (build moat-sandbox-helper with no cgo package)", nr)
		}
		return errno
	}
	return nil
}
