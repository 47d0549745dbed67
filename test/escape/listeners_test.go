//go:build linux

package escape

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
)

// tcpTarget is a host TCP listener that counts the connections it accepts.
type tcpTarget struct {
	addr  string
	port  string
	count atomic.Int64
}

func listenTCP(t *testing.T, network, address string) *tcpTarget {
	t.Helper()
	l, err := net.Listen(network, address)
	if err != nil {
		t.Fatalf("listen %s %s: %v", network, address, err)
	}
	t.Cleanup(func() { l.Close() })
	tt := &tcpTarget{addr: l.Addr().String()}
	_, tt.port, _ = net.SplitHostPort(tt.addr)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			tt.count.Add(1)
			c.Write([]byte("HOST-SERVICE-REACHED\n"))
			c.Close()
		}
	}()
	return tt
}

// udpTarget counts datagrams.
type udpTarget struct {
	port  string
	count atomic.Int64
}

func listenUDP(t *testing.T) *udpTarget {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	u := &udpTarget{}
	_, u.port, _ = net.SplitHostPort(pc.LocalAddr().String())
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			u.count.Add(1)
		}
	}()
	return u
}

// abstractTarget is a host process's abstract unix socket.
type abstractTarget struct {
	name  string
	count atomic.Int64
}

func listenAbstract(t *testing.T) *abstractTarget {
	t.Helper()
	name := "moat-escape-" + strconv.Itoa(os.Getpid())
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: "@" + name, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	a := &abstractTarget{name: name}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			a.count.Add(1)
			c.Close()
		}
	}()
	return a
}

// victim is a host process an attack tries to reach.
func victim(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("/bin/sleep", "3600")
	cmd.Env = []string{"MOAT_VICTIM_SECRET=" + envSecret}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

func victimAlive(cmd *exec.Cmd) bool {
	return cmd.Process.Signal(syscall.Signal(0)) == nil
}

func tracerPid(pid int) string {
	data, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for _, line := range splitLines(string(data)) {
		if len(line) > 10 && line[:10] == "TracerPid:" {
			return line[10:]
		}
	}
	return ""
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}
