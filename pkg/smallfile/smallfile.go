// Package smallfile reads files another party may have put in place — a
// workspace's .moat-profile or .git/config, a rules file, a sed script —
// without trusting them to be regular, small or ever to end.
//
// Invariants: only a regular file is read (a FIFO, a device, a socket is an
// error: nothing blocks on a writer that never comes, nothing reads
// /dev/zero forever; a device seen at the first look is never opened, one
// swapped in after it is opened without blocking and not read); never more than
// the caller's bound is read or allocated, however the file grows while it
// is read; a directory is an error wrapping syscall.EISDIR, as os.ReadFile
// gives.
package smallfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// ErrNotRegular is a path that is not a regular file (after symlinks).
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is a file over the caller's bound.
var ErrTooLarge = errors.New("file too large")

// Read returns the content of the regular file at path (symlinks
// followed), at most max bytes; a larger file is ErrTooLarge.
func Read(path string, max int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := check(path, fi, max); err != nil {
		return nil, err
	}
	// Not blocking: the path may have become a FIFO since the stat.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, err
	}
	if err := check(path, fi, max); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, tooLarge(path, max)
	}
	return data, nil
}

func check(path string, fi os.FileInfo, max int64) error {
	switch {
	case fi.IsDir():
		return &os.PathError{Op: "read", Path: path, Err: syscall.EISDIR}
	case !fi.Mode().IsRegular():
		return &os.PathError{Op: "read", Path: path, Err: ErrNotRegular}
	case fi.Size() > max:
		return tooLarge(path, max)
	}
	return nil
}

func tooLarge(path string, max int64) error {
	return &os.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w: over %d bytes", ErrTooLarge, max)}
}
