//go:build linux

package inside

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// resolvConf points the run's resolver at the DNS responder inside its
// namespace: a file in the private /tmp bound over /etc/resolv.conf,
// read-only, then unlinked (the mount keeps it). Without /etc/resolv.conf
// there is nothing to do: the C library then asks 127.0.0.1 anyway.
func resolvConf() error {
	const target = "/etc/resolv.conf"
	if _, err := os.Stat(target); err != nil {
		return nil
	}
	f, err := os.CreateTemp("/tmp", ".moat-resolv-*")
	if err != nil {
		return fmt.Errorf("resolv.conf: %v", err)
	}
	src := f.Name()
	defer os.Remove(src)
	_, err = f.WriteString("# moat: the run's own resolver, which answers only for allowed names\nnameserver 127.0.0.1\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(src, 0o444)
	}
	if err == nil {
		err = unix.Mount(src, target, "", unix.MS_BIND, "")
	}
	if err == nil {
		err = setattr(target, 0, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC, 0)
	}
	if err != nil {
		return fmt.Errorf("resolv.conf: %v", err)
	}
	return nil
}
