//go:build linux

package inside

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The run's seccomp supervisor. The filter (seccomp_linux.go) returns
// SECCOMP_RET_USER_NOTIF for every call it refuses; the kernel then stops
// the calling thread and hands the call to the helper, which holds the
// filter's listener. The supervisor:
//
//   - answers every call with EPERM, never with SECCOMP_USER_NOTIF_FLAG_CONTINUE:
//     a call the filter sends here is refused, whatever happens next. Should
//     the supervisor be gone (the helper dead, the listener closed), the
//     kernel answers ENOSYS: still refused;
//   - decides nothing from the call: it reads only its number and integer
//     arguments, copied by the kernel, never memory the caller could change
//     under it (no time-of-check/time-of-use);
//   - records each kind of call (name, the refusing argument, a count, the
//     first caller's comm), at most MaxSyscallDenials kinds, and reports
//     a new kind at once on the status pipe, so a run later killed (its
//     timeout) still says what was refused.
//
// Only refused calls reach it; an allowed call costs what it did before.
// The helper's own threads are under the same filter, and call none of the
// refused calls (a Go runtime does not), so the supervisor cannot wait on
// itself. The listener is close-on-exec and the helper not dumpable: the
// command can neither inherit it nor take it (pidfd_getfd is refused).

// seccomp_notif, seccomp_data and seccomp_notif_resp of <linux/seccomp.h>.
type seccompData struct {
	Nr   int32
	Arch uint32
	IP   uint64
	Args [6]uint64
}

type seccompNotif struct {
	ID    uint64
	Pid   uint32
	Flags uint32
	Data  seccompData
}

type seccompResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

// notifIDValid is SECCOMP_IOCTL_NOTIF_ID_VALID, _IOW('!', 2, __u64).
const notifIDValid = 0x40082102

// supervisor records and refuses the calls one filter's listener hands over.
type supervisor struct {
	file   *os.File
	filter *Filter
	status *json.Encoder // the status pipe: a new kind is told at once
	done   chan struct{}

	mu     sync.Mutex
	denied []SyscallDenial
}

// superviseSeccomp serves the listener fd until stop.
func superviseSeccomp(fd int, filter *Filter, status *os.File) (*supervisor, error) {
	// Non-blocking, so the file is served by the runtime's poller and
	// waiting costs no thread of its own.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("seccomp listener: %v", err)
	}
	s := &supervisor{file: os.NewFile(uintptr(fd), "seccomp-listener"), filter: filter,
		status: json.NewEncoder(status), done: make(chan struct{})}
	go s.serve()
	return s, nil
}

// stop ends the supervisor and returns what it refused. A call still in
// flight from an orphan of the command gets ENOSYS from the kernel.
func (s *supervisor) stop() []SyscallDenial {
	s.file.Close()
	<-s.done
	return s.denied
}

func (s *supervisor) serve() {
	defer close(s.done)
	rc, err := s.file.SyscallConn()
	if err != nil {
		return
	}
	for {
		var n seccompNotif
		var recvErr error
		err := rc.Read(func(fd uintptr) bool {
			// RECV blocks when nothing is pending: wait on the poller first.
			p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			if k, _ := unix.Poll(p, 0); k < 1 || p[0].Revents&unix.POLLIN == 0 {
				return false
			}
			n = seccompNotif{} // the kernel wants it zeroed
			recvErr = ioctlPtr(fd, unix.SECCOMP_IOCTL_NOTIF_RECV, unsafe.Pointer(&n))
			return true
		})
		if err != nil {
			return // closed by stop
		}
		switch {
		case recvErr == nil:
		case errors.Is(recvErr, unix.ENOENT), errors.Is(recvErr, unix.EINTR):
			continue // the caller died before it was handed over
		default:
			// Cannot serve: closing the listener makes the kernel refuse
			// every call still to come with ENOSYS.
			fmt.Fprintf(os.Stderr, "moat: init: seccomp supervisor: %v\n", recvErr)
			s.file.Close()
			return
		}
		// Control keeps the descriptor open while it runs (File.Fd would
		// take the file off the poller).
		rc.Control(func(fd uintptr) {
			s.record(&n, fd)
			resp := seccompResp{ID: n.ID, Error: -int32(unix.EPERM)}
			// ENOENT: the caller died meanwhile; nothing to answer.
			ioctlPtr(fd, unix.SECCOMP_IOCTL_NOTIF_SEND, unsafe.Pointer(&resp))
		})
	}
}

// record counts one refused call, under its kind.
func (s *supervisor) record(n *seccompNotif, fd uintptr) {
	name := s.filter.Names[int(n.Data.Nr)]
	if name == "" {
		name = fmt.Sprintf("syscall %d", n.Data.Nr)
	}
	detail := refusedArg(name, n.Data.Args, s.filter.CloneFlagsArg)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.denied {
		if d := &s.denied[i]; d.Syscall == name && d.Detail == detail {
			if d.Count < 1<<30 {
				d.Count++
			}
			return
		}
	}
	if len(s.denied) >= MaxSyscallDenials {
		return
	}
	d := SyscallDenial{Syscall: name, Detail: detail, Count: 1, Reason: refusedWhy(name)}
	// Which program: its comm, kept only if the caller is still the one
	// that made the call (the pid was not reused meanwhile).
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", n.Pid)); err == nil {
		id := n.ID
		if ioctlPtr(fd, notifIDValid, unsafe.Pointer(&id)) == nil {
			d.Process = cleanComm(comm)
		}
	}
	s.denied = append(s.denied, d)
	s.status.Encode(Status{Refused: &d})
}

// refusedArg names the integer argument that made a call refused, where
// one did: the socket family, the terminal ioctl, the namespace flags.
func refusedArg(name string, args [6]uint64, cloneFlagsArg int) string {
	switch name {
	case "socket", "socketpair":
		return map[uint32]string{unix.AF_INET: "AF_INET", unix.AF_INET6: "AF_INET6", unix.AF_PACKET: "AF_PACKET"}[uint32(args[0])]
	case "ioctl":
		return map[uint32]string{Tiocsti: "TIOCSTI", Tioclinux: "TIOCLINUX"}[uint32(args[1])]
	case "clone":
		return nsFlagNames(uint32(args[cloneFlagsArg]))
	case "unshare":
		return nsFlagNames(uint32(args[0]))
	}
	return ""
}

// nsFlagNames lists the namespace flags set in flags.
func nsFlagNames(flags uint32) string {
	var out []string
	for _, f := range []struct {
		bit  uint32
		name string
	}{
		{unix.CLONE_NEWNS, "CLONE_NEWNS"}, {unix.CLONE_NEWUSER, "CLONE_NEWUSER"}, {unix.CLONE_NEWPID, "CLONE_NEWPID"},
		{unix.CLONE_NEWNET, "CLONE_NEWNET"}, {unix.CLONE_NEWUTS, "CLONE_NEWUTS"}, {unix.CLONE_NEWIPC, "CLONE_NEWIPC"},
		{unix.CLONE_NEWCGROUP, "CLONE_NEWCGROUP"}, {unix.CLONE_NEWTIME, "CLONE_NEWTIME"},
	} {
		if flags&f.bit != 0 {
			out = append(out, f.name)
		}
	}
	return strings.Join(out, "|")
}

// cleanComm is a comm the command chose, made safe to show: letters,
// digits and ._+- only, others as '?'.
func cleanComm(b []byte) string {
	s := strings.TrimSuffix(string(b), "\n")
	if len(s) > 16 {
		s = s[:16]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._+-", r)) {
			return r
		}
		return '?'
	}, s)
}

func ioctlPtr(fd uintptr, req uint, arg unsafe.Pointer) error {
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, fd, uintptr(req), uintptr(arg)); e != 0 {
		return e
	}
	return nil
}
