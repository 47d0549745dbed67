//go:build linux

package sandbox

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moatsec/moat/pkg/sandbox/inside"
)

// TestHelperRefusesNoFilter: the seccomp filter comes from sandboxd in the
// prelude it hands every helper; a helper handed none, an empty one or one
// too long for the kernel refuses the run before the command starts,
// rather than running it unfiltered.
func TestHelperRefusesNoFilter(t *testing.T) {
	ws, p := initWorkspace(t, "offline")
	marker := filepath.Join(ws, "ran")
	good, err := seccompFor(true)
	if err != nil || len(good.Program) == 0 || len(good.Names) == 0 {
		t.Fatalf("seccompFor(true) = %+v, %v", good, err)
	}
	for _, f := range []*inside.Filter{nil, {Names: good.Names}, {Program: make([]inside.SockFilter, 5000), Names: good.Names}} {
		pre, err := json.Marshal(&inside.Prelude{Net: f, NoNet: f})
		if err != nil {
			t.Fatal(err)
		}
		h, err := spawnWith(true, false, pre)
		if err != nil {
			t.Fatal(err)
		}
		cfg := &inside.Config{
			Argv: []string{"/bin/sh", "-c", "echo x > " + marker}, Dir: ws, Profile: helperProfile(p),
			UID: os.Geteuid(), GID: os.Getegid(), NoNet: true, TmpBytes: 1 << 20,
		}
		_, err = h.begin(cfg)
		h.close()
		if err == nil || !strings.Contains(err.Error(), "filter has") {
			t.Errorf("a configuration with filter %v: %v, want a refusal naming the filter", f != nil, err)
		}
		if _, err := os.Stat(marker); !os.IsNotExist(err) {
			t.Fatalf("the command ran without the filter (%s exists: %v)", marker, err)
		}
	}
}
