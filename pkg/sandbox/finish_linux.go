//go:build linux

package sandbox

import "sync"

// A run is answered once its init reports that it is alone
// (inside.Exit.Alone): every other process of the run reaped, its output
// closed. The init's own exit — tearing down the run's namespaces and
// mounts, ~0.7 ms — and the removal of the run's group follow off the
// run's path. finishing counts the helpers still doing so; Settle waits
// for them, as EnablePool(0) (sandboxd stopping) and a one-shot `sandboxd
// exec` do, so that no group is left behind.
var finishing struct {
	mu   sync.Mutex
	n    int
	zero sync.Cond // broadcast as n drops to 0
}

func init() { finishing.zero.L = &finishing.mu }

// finishLater waits for h, whose init reported it alone, to exit, then
// releases it, without holding up its caller.
func (h *helperProc) finishLater() {
	finishing.mu.Lock()
	finishing.n++
	finishing.mu.Unlock()
	go func() {
		h.wait()
		h.release()
		finishing.mu.Lock()
		if finishing.n--; finishing.n == 0 {
			finishing.zero.Broadcast()
		}
		finishing.mu.Unlock()
	}()
}

// Settle waits until no helper of an answered run is still exiting, its
// group removed.
func Settle() {
	finishing.mu.Lock()
	for finishing.n > 0 {
		finishing.zero.Wait()
	}
	finishing.mu.Unlock()
}
