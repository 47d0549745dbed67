//go:build linux

package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/profile"
	"github.com/moatsec/moat/pkg/wire"
)

// TestPool: runs take helpers started ahead; one that died while idle is
// replaced, not used.
func TestPool(t *testing.T) {
	EnablePool(1)
	defer EnablePool(0)
	base, err := os.MkdirTemp("/var/tmp", "moat-sandbox-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	r, _ := profile.NewResolver(profile.Options{MoatHome: filepath.Join(base, "moat")})
	p, err := r.Resolve(&wire.ResolveRequest{Profile: "offline", Workspace: base})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if i == 3 { // kill whatever waits in the pool
			pool.mu.Lock()
			for _, h := range pool.idle[true] {
				h.cmd.Process.Kill()
			}
			pool.mu.Unlock()
		}
		res, err := Run(context.Background(), &Spec{Argv: []string{"sh", "-c", "test $$ != 1 && cat"}, Profile: p, Stdin: []byte("in\n")})
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if res.ExitCode != 0 || string(res.Stdout) != "in\n" {
			t.Fatalf("run %d: exit %d, out %q, err %q", i, res.ExitCode, res.Stdout, res.Stderr)
		}
	}
}

// TestConcurrentRuns runs commands side by side in one workspace, as
// sandboxd does under load: each must run, isolated, and leave nothing.
func TestConcurrentRuns(t *testing.T) {
	base, err := os.MkdirTemp("/var/tmp", "moat-sandbox-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	ws := filepath.Join(base, "ws")
	os.MkdirAll(ws, 0o755)
	r, err := profile.NewResolver(profile.Options{MoatHome: filepath.Join(base, "moat")})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 48; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			name := []string{"offline", "workspace-write"}[i%2]
			p, err := r.Resolve(&wire.ResolveRequest{Profile: name, Workspace: ws})
			if err != nil {
				errs <- err
				return
			}
			res, err := Run(context.Background(), &Spec{Argv: []string{"/bin/true"}, Profile: p})
			if err != nil {
				errs <- err
				return
			}
			if res.ExitCode != 0 {
				errs <- &wire.Error{Code: 500, Message: string(res.Stderr)}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if entries, _ := os.ReadDir(ws); len(entries) != 0 {
		t.Errorf("placeholders left behind: %v", entries)
	}
}

// BenchmarkRun measures Run of /bin/true under offline, with helpers
// started ahead (pool) and without, side by side.
func BenchmarkRun(b *testing.B) {
	base, err := os.MkdirTemp("/var/tmp", "moat-sandbox-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(base)
	r, _ := profile.NewResolver(profile.Options{MoatHome: filepath.Join(base, "moat")})
	p, _ := r.Resolve(&wire.ResolveRequest{Profile: "offline", Workspace: base})
	for _, n := range []int{0, 2} {
		b.Run(map[int]string{0: "cold", 2: "pooled"}[n], func(b *testing.B) {
			EnablePool(n)
			defer EnablePool(0)
			for i := 0; i < b.N; i++ {
				if _, err := Run(context.Background(), &Spec{Argv: []string{"/bin/true"}, Profile: p}); err != nil {
					b.Fatal(err)
				}
				if n > 0 {
					time.Sleep(5 * time.Millisecond) // let the pool refill, as between requests
				}
			}
		})
	}
}
