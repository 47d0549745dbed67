package sandbox

import (
	"fmt"
	"sort"
	"strings"

	"github.com/moatsec/moat/pkg/wire"
)

// Seatbelt generates the macOS sandbox profile (SBPL) for p: deny by
// default; read everything but the read-deny list; write only the writable
// roots and the temporary directories, never the protected paths; network
// only when the profile has it (an allowlist becomes its ports). The last
// matching rule wins in SBPL, so the denials come after the allowances they
// narrow. It is plain text, tested on every platform, run by sandbox-exec
// on macOS.
func Seatbelt(p *wire.Profile) string {
	var b strings.Builder
	b.WriteString("(version 1)\n(deny default)\n")
	b.WriteString("(allow process-exec process-fork)\n(allow signal (target same-sandbox))\n")
	b.WriteString("(allow sysctl-read mach-lookup ipc-posix-shm iokit-open)\n")
	b.WriteString("(allow file-read*)\n")
	b.WriteString("(allow file-write*\n    (subpath \"/private/tmp\")\n    (subpath \"/private/var/folders\")\n    (literal \"/dev/null\")\n    (literal \"/dev/tty\")\n")
	for _, path := range sorted(p.FS.Write) {
		fmt.Fprintf(&b, "    (subpath %s)\n", sbplString(path))
	}
	b.WriteString(")\n")
	if len(p.FS.WriteDeny) > 0 {
		b.WriteString("(deny file-write*\n")
		for _, path := range sorted(p.FS.WriteDeny) {
			fmt.Fprintf(&b, "    (subpath %s)\n", sbplString(path))
		}
		b.WriteString(")\n")
	}
	if len(p.FS.ReadDeny) > 0 {
		b.WriteString("(deny file-read* file-write*\n")
		for _, path := range sorted(p.FS.ReadDeny) {
			fmt.Fprintf(&b, "    (subpath %s)\n", sbplString(path))
		}
		b.WriteString(")\n")
	}
	switch p.Net.Mode {
	case wire.NetFull:
		b.WriteString("(allow network*)\n")
	case wire.NetAllowlist:
		b.WriteString("(allow network-outbound\n")
		for _, port := range allowedPortsOf(p.Net.Allow) {
			fmt.Fprintf(&b, "    (remote tcp \"*:%d\")\n", port)
		}
		b.WriteString("    (remote udp \"*:53\"))\n")
	default:
		b.WriteString("(deny network*)\n")
	}
	return b.String()
}

// sbplString quotes s for SBPL.
func sbplString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}

func sorted(l []string) []string {
	out := append([]string(nil), l...)
	sort.Strings(out)
	return out
}
