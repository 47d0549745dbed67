package smallfile

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestRead: a regular file is read whole; a FIFO with no writer, a device
// that never ends, a file over the bound and a directory are errors, each
// returned at once, having read nothing past the bound.
func TestRead(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, []byte("hello\n"), 0o644)
	big := filepath.Join(dir, "big")
	os.WriteFile(big, make([]byte, 4097), 0o644)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero")
	os.Symlink("/dev/zero", zero)
	link := filepath.Join(dir, "link")
	os.Symlink(plain, link)

	for _, p := range []string{plain, link} {
		if data, err := Read(p, 4096); err != nil || string(data) != "hello\n" {
			t.Errorf("%s: %q, %v", p, data, err)
		}
	}
	for p, want := range map[string]error{fifo: ErrNotRegular, zero: ErrNotRegular, big: ErrTooLarge, dir: syscall.EISDIR} {
		done := make(chan error, 1)
		go func() { _, err := Read(p, 4096); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, want) {
				t.Errorf("%s: %v, want %v", p, err, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: Read still blocked after 10 s", p)
		}
	}
	if _, err := Read(filepath.Join(dir, "missing"), 10); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
}
