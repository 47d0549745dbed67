//go:build linux

package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/moatsec/moat/pkg/sandbox/inside"
	"golang.org/x/sys/unix"
)

// HelperName is the sandbox helper's executable (cmd/moat-sandbox-helper).
// A binary that runs sandboxes finds it in its own directory; one that
// calls [Init] (a test binary) is its own helper instead.
const HelperName = "moat-sandbox-helper"

// selfHelper is set by Init: Run re-executes this binary as the helper.
var selfHelper bool

// helperBin is the helper executable, opened once and kept open, so every
// helper runs the file that was checked, whatever later happens to the
// path.
var helperBin struct {
	once sync.Once
	file *os.File
	err  error
}

// FindHelper opens the sandbox helper, or says why no run can start: it is
// missing, not executable, or could be changed by someone other than the
// user sandboxd runs as. sandboxd calls it at start to fail then rather
// than at its first run; Run refuses with the same error.
func FindHelper() error {
	_, err := helperPath()
	return err
}

// helperPath is the path to execute as the helper.
func helperPath() (string, error) {
	if selfHelper {
		return "/proc/self/exe", nil
	}
	helperBin.once.Do(func() { helperBin.file, helperBin.err = openHelper() })
	if helperBin.err != nil {
		return "", helperBin.err
	}
	return "/proc/self/fd/" + strconv.Itoa(int(helperBin.file.Fd())), nil
}

func openHelper() (*os.File, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, refuse("find the sandbox helper: where this program is: %v", err)
	}
	return openHelperIn(self)
}

// openHelperIn opens HelperName next to the executable self.
func openHelperIn(self string) (*os.File, error) {
	dir := filepath.Dir(self)
	p := filepath.Join(dir, HelperName)
	how := fmt.Sprintf("build it next to %s (`go build -o %s/ ./cmd/...`, as scripts/up does)", filepath.Base(self), dir)
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, refuse("the sandbox helper %s: %v: %s", p, err, how)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, refuse("the sandbox helper %s: %v", p, err)
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o111 == 0:
		err = fmt.Errorf("not an executable file: %s", how)
	case st.Uid != 0 && int(st.Uid) != os.Geteuid():
		err = fmt.Errorf("owned by uid %d, neither root nor this user: chown it", st.Uid)
	case st.Mode&0o022 != 0:
		err = fmt.Errorf("writable by group or others (mode %o): chmod go-w it", st.Mode&0o777)
	}
	if err != nil {
		f.Close()
		return nil, refuse("the sandbox helper %s: %v", p, err)
	}
	return f, nil
}

// Init turns this process into the sandbox helper when it was started as
// one and never returns then (see inside.Main). Otherwise it returns at
// once, and Run re-executes this binary as its helper: test binaries call
// it first thing in TestMain. A binary that does not call it runs
// [HelperName] from its own directory (cmd/moat-sandbox-helper, whose main
// is inside.Main), so the helper links none of the packages the caller
// does.
func Init() {
	inside.Main()
	selfHelper = true
}
