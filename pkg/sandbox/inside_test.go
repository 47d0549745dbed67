//go:build linux

package sandbox

import (
	"reflect"
	"testing"

	"github.com/moatsec/moat/pkg/sandbox/inside"
	"github.com/moatsec/moat/pkg/wire"
)

// TestInsideMatchesWire: the helper's copies of the bus's names and
// bounds (it links no pkg/wire) are the bus's, and helperProfile hands it
// every rule it enforces.
func TestInsideMatchesWire(t *testing.T) {
	for _, c := range [][2]string{{inside.NetNone, wire.NetNone}, {inside.NetFull, wire.NetFull}, {inside.NetAllowlist, wire.NetAllowlist}} {
		if c[0] != c[1] {
			t.Errorf("inside names a network mode %q, wire %q", c[0], c[1])
		}
	}
	if inside.MaxSyscallDenials != wire.MaxSyscallDenials {
		t.Errorf("inside.MaxSyscallDenials %d, wire %d", inside.MaxSyscallDenials, wire.MaxSyscallDenials)
	}
	p := &wire.Profile{Workspace: "/w",
		FS:     wire.FS{Write: []string{"/w"}, ReadDeny: []string{"/root/.ssh"}, WriteDeny: []string{"/w/.git/hooks"}, Read: []string{"/opt/x"}},
		Net:    wire.Net{Mode: wire.NetAllowlist, Allow: []string{"example.test", "db.test:5432"}},
		Limits: wire.Limits{CPUMS: 1500, FileBytes: 1 << 20, MemoryBytes: 1 << 30}}
	want := &inside.Profile{Workspace: "/w",
		FS:     inside.FS{Write: []string{"/w"}, ReadDeny: []string{"/root/.ssh"}, WriteDeny: []string{"/w/.git/hooks"}, Read: []string{"/opt/x"}},
		Net:    inside.Net{Mode: wire.NetAllowlist, Ports: []uint16{443, 5432}},
		Limits: inside.Limits{CPUMS: 1500, FileBytes: 1 << 20}}
	if got := helperProfile(p); !reflect.DeepEqual(got, want) {
		t.Errorf("helperProfile:\n got %+v\nwant %+v", got, want)
	}
}
