//go:build linux

package sandbox

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/moatsec/moat/pkg/sandbox/inside"
	"golang.org/x/sys/unix"
)

// HelperName is the sandbox helper's executable (cmd/moat-sandbox-helper).
// A binary that runs sandboxes finds it in its own directory; one that
// calls [Init] (a test binary) builds it instead.
const HelperName = "moat-sandbox-helper"

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

// Init readies a test binary to run sandboxes: call it first thing in
// TestMain. A binary that does not call it runs [HelperName] from its own
// directory (cmd/moat-sandbox-helper, whose main is inside.Main), so the
// helper links none of the packages the caller does. A test binary has no
// helper beside it, and cannot be its own: the helper changes the
// capabilities and the Landlock domain of all its threads through the Go
// runtime (syscall.AllThreadsSyscall), which refuses in a binary linked
// with cgo, as a test binary linking net or os/user is. So Init builds the
// helper from the module the test runs in (`go build`, into a temporary
// directory removed at once: the file stays open, and runs are started
// from its descriptor); when it cannot, every Run refuses, saying why.
// Started as the helper (argv[0] is inside.Arg0), the binary is one and
// Init does not return.
func Init() {
	inside.Main()
	helperBin.once.Do(func() { helperBin.file, helperBin.err = buildHelper() })
}

// buildHelper builds cmd/moat-sandbox-helper and opens it.
func buildHelper() (*os.File, error) {
	dir, err := os.MkdirTemp("", "moat-sandbox-helper-")
	if err != nil {
		return nil, refuse("build the sandbox helper: %v", err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, refuse("build the sandbox helper: %v", err)
	}
	out, err := exec.Command("go", "build", "-o", dir+"/", "github.com/moatsec/moat/cmd/"+HelperName).CombinedOutput()
	if err != nil {
		return nil, refuse("build the sandbox helper for this test binary (it needs the go command, run from inside the moat module): %v: %s", err, bytes.TrimSpace(out))
	}
	return openHelperIn(filepath.Join(dir, "sandboxd"))
}
