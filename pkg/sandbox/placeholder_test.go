//go:build linux

package sandbox

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/moatsec/moat/pkg/wire"
)

// TestPlaceholdersRace: runs that start and end side by side in a
// workspace without .git each get their placeholders, never "mkdir: no
// such file or directory" because another run removed .git in between,
// and the workspace is left as it was.
func TestPlaceholdersRace(t *testing.T) {
	base, err := os.MkdirTemp("/var/tmp", "moat-sandbox-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	ws := filepath.Join(base, "ws")
	os.MkdirAll(ws, 0o755)
	// Only the nested pair, so the runs collide as often as they can.
	p := &wire.Profile{Workspace: ws, FS: wire.FS{Write: []string{ws},
		WriteDeny: []string{filepath.Join(ws, ".git", "config"), filepath.Join(ws, ".git", "hooks")}}}
	const workers, rounds = 8, 20000
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				made, err := placeholders(p)
				removePlaceholders(made)
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if ents, _ := os.ReadDir(ws); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
}
