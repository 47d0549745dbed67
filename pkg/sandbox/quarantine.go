package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
)

// A finding is a file a run left that could make a program run later,
// outside any sandbox, or that a write_deny pattern names.
type finding struct {
	path, reason string
}

// quarantineDir is where what a run left is moved: spec's, or
// MOAT_HOME/quarantine; "" when there is none (what is found is deleted).
func (s *Spec) quarantineDir() string {
	if s.Quarantine != "" {
		return s.Quarantine
	}
	h, err := home.FromEnv()
	if err != nil {
		return ""
	}
	return h.QuarantineDir()
}

// quarantine moves each found file into a fresh directory under dir,
// keeping its path (dir/<time>-<n>/<path>). A file that cannot be moved is
// deleted: it must not stay where git finds it.
func quarantine(dir string, found []finding) []wire.Quarantined {
	if len(found) == 0 {
		return nil
	}
	var run string
	if err := os.MkdirAll(dir, 0o700); dir != "" && err == nil {
		run, _ = os.MkdirTemp(dir, time.Now().UTC().Format("20060102T150405")+"-")
	}
	out := make([]wire.Quarantined, 0, len(found))
	for _, f := range found {
		q := wire.Quarantined{Path: f.path, Reason: f.reason}
		var err error
		if run == "" {
			err = fmt.Errorf("quarantine %s cannot be made", dir)
		} else {
			dest := filepath.Join(run, strings.TrimPrefix(f.path, "/"))
			if err = moveOut(f.path, dest); err == nil {
				q.MovedTo = dest
			}
		}
		if err != nil {
			if rmErr := os.Remove(f.path); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
				q.Reason += fmt.Sprintf(" (NOT REMOVED: %v; %v: remove it by hand before using git there)", err, rmErr)
			} else {
				q.Reason += fmt.Sprintf(" (deleted, not kept: %v)", err)
			}
		}
		out = append(out, q)
	}
	return out
}

// ReportQuarantine tells, on w, what the check after a run moved aside.
func ReportQuarantine(w io.Writer, moved []wire.Quarantined) {
	for _, q := range moved {
		to := q.MovedTo
		if to == "" {
			to = "nowhere"
		}
		fmt.Fprintf(w, "moat: moved %s to %s: %s\n", q.Path, to, q.Reason)
	}
}

// moveOut renames src to dst, copying and removing across filesystems.
func moveOut(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	err := os.Rename(src, dst)
	if !errors.Is(err, syscall.EXDEV) {
		return err
	}
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, dst); err != nil {
			return err
		}
	case fi.Mode().IsRegular():
		if err := copyFile(src, dst); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%s is neither a file nor a link", src)
	}
	return os.Remove(src)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
