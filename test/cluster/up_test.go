//go:build linux

package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/test/testbin"
)

// `scripts/up --cluster 3` brings up three servers routed together under
// foreman, the daemons spread across them; moat status sees it all.
func TestScriptsUpCluster(t *testing.T) {
	if _, err := exec.LookPath("foreman"); err != nil {
		t.Fatal("foreman is not installed: apt-get install ruby-foreman (.ci/run does this)")
	}
	w := newWorld(t)
	base := testbin.FreePort(t)
	for base > 25000 || !portsFree(base) { // the script uses base, +2000 and +4000, three each
		base = testbin.FreePort(t)
	}
	root, _ := filepath.Abs("../..")
	up := exec.Command(filepath.Join(root, "scripts", "up"), "--cluster", "3")
	up.Dir = root
	up.Env = append(w.vars, "MOAT_BIN="+binDir, fmt.Sprintf("MOAT_CLUSTER_BASE=%d", base))
	up.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p, err := testbin.Start("scripts/up --cluster 3", up)
	if err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	w.procs = append(w.procs, p)
	w.mu.Unlock()

	var urls []string
	for i := range 3 {
		urls = append(urls, "nats://"+testbin.Addr(base+i))
	}
	testbin.Eventually(t, 90*time.Second, "the cluster up with every service", func() error {
		cmd := w.cmd("moat", "status", "--json", "--wait", "500ms")
		cmd.Env = append(cmd.Env, "MOAT_BUS="+strings.Join(urls, ","))
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("moat status: %v %s", err, out)
		}
		var st client.Status
		if err := json.Unmarshal(out, &st); err != nil {
			return err
		}
		if len(st.Servers) != 3 || len(st.Missing) != 0 {
			return fmt.Errorf("%d servers, missing %v", len(st.Servers), st.Missing)
		}
		for _, b := range st.Servers {
			if len(b.Routes) != 2 {
				return fmt.Errorf("%s routes to %v", b.Name, b.Routes)
			}
		}
		return nil
	})
	c := w.dial("client", strings.Join(urls, ","))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Profiles(ctx); err != nil {
		t.Fatalf("profiles through the cluster: %v", err)
	}
}

// portsFree reports whether the script's nine ports are free.
func portsFree(base int) bool {
	for _, off := range []int{0, 2000, 4000} {
		for i := range 3 {
			if !testbin.PortFree(base + off + i) {
				return false
			}
		}
	}
	return true
}
