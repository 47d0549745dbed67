//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/moatsec/moat/test/testbin"
)

// TestGrantsCLI runs the real binaries: moat approve --for 2uses --prefix
// grants the next checks of commands that start so; moat grants lists who,
// when and what is left; moat revoke ends it at once (the next check asks);
// a client key may neither list nor revoke; a rule grant covers moat run
// too, and its prefix_rule line (not loaded) is in MOAT_HOME/grants.rules
// until it is revoked.
func TestGrantsCLI(t *testing.T) {
	e := newEnv(t)
	_, url := startBus(t, e)
	start(t, e.cmd("profiled"))
	start(t, e.cmd("policyd", "--approval-timeout", "8s"))
	start(t, e.cmd("sandboxd"))
	c := dialWait(t, e, url)
	waitService(t, c, "policyd", 1)
	waitService(t, c, "sandboxd", 1)

	approve := func(args ...string) string {
		t.Helper()
		chk := e.cmd("moat", "check", "--approval", "on-request", "--", "python3", "-c", "print(1)")
		chk.Dir = e.ws
		p := start(t, chk)
		asked := regexp.MustCompile(`moat approve (\S+) or moat deny`)
		var id string
		testbin.Eventually(t, 30*time.Second, "moat check saying who is asked", func() error {
			m := asked.FindStringSubmatch(p.Output())
			if m == nil {
				return fmt.Errorf("output so far: %q", p.Output())
			}
			id = m[1]
			return nil
		})
		out, err := e.cmd("moat", append([]string{"approve", id}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("moat approve %s: %v\n%s", args, err, out)
		}
		<-p.Done
		if !strings.Contains(p.Output(), "ALLOW") {
			t.Fatalf("the asking check: %s", p.Output())
		}
		m := regexp.MustCompile(`grant (\S+):`).FindStringSubmatch(string(out))
		if m == nil {
			t.Fatalf("moat approve said no grant: %s", out)
		}
		return m[1]
	}
	check := func(argv ...string) string {
		t.Helper()
		chk := e.cmd("moat", append([]string{"check", "--approval", "on-request", "--"}, argv...)...)
		chk.Dir = e.ws
		out, _ := chk.CombinedOutput()
		return string(out)
	}

	id := approve("--for", "2uses", "--prefix", "python3 -c")
	if out := check("python3", "-c", "print(2)"); !strings.Contains(out, "ALLOW") || !strings.Contains(out, "approval.grant") || !strings.Contains(out, "1 uses left") {
		t.Fatalf("covered by the grant: %s", out)
	}
	out, err := e.cmd("moat", "grants", "--json").Output()
	var l []wire.Grant
	if err != nil || json.Unmarshal(out, &l) != nil || len(l) != 1 || l[0].ID != id || l[0].Uses != 1 || l[0].By == "" || !l[0].Prefix {
		t.Fatalf("moat grants: %v %s", err, out)
	}
	client := filepath.Join(e.home, "creds", home.RoleClient+".nk")
	for _, args := range [][]string{{"grants"}, {"revoke", id}} {
		out, err := e.cmd("moat", append(args, "--creds", client)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "(403)") {
			t.Fatalf("moat %s with the client key: %v\n%s", args, err, out)
		}
	}
	if out, err := e.cmd("moat", "revoke", id).CombinedOutput(); err != nil || !strings.Contains(string(out), "revoked") {
		t.Fatalf("moat revoke: %v\n%s", err, out)
	}
	if out := check("python3", "-c", "print(3)"); strings.Contains(out, "ALLOW") || !strings.Contains(out, wire.ReasonApprovalTimeout) {
		t.Fatalf("after the revoke: %s", out)
	}

	// A rule grant: its prefix_rule line in MOAT_HOME/grants.rules while it
	// is in force, a record policyd does not load; revoked, the line goes.
	rid := approve("--for", "rule", "--prefix", "python3 -c")
	grantsRules := filepath.Join(e.home, "grants.rules")
	b, err := os.ReadFile(grantsRules)
	if err != nil || !strings.Contains(string(b), `prefix_rule(pattern = ["python3", "-c"], decision = "allow"`) || !strings.Contains(string(b), rid) {
		t.Fatalf("rules file: %v\n%s", err, b)
	}
	if out := check("python3", "-c", "print(4)"); !strings.Contains(out, "approval.grant") {
		t.Fatalf("covered by the rule grant: %s", out)
	}
	// moat run: sandboxd's check (moat.policy.check.resolved) is covered too.
	run := e.cmd("moat", "run", "--", "python3", "-c", "print(6 * 7)")
	run.Dir = e.ws
	if out, err := run.CombinedOutput(); err != nil || !strings.Contains(string(out), "42") {
		t.Fatalf("moat run covered by the rule grant: %v\n%s", err, out)
	}
	if out, err := e.cmd("moat", "revoke", rid).CombinedOutput(); err != nil {
		t.Fatalf("moat revoke %s: %v\n%s", rid, err, out)
	}
	if b, err := os.ReadFile(grantsRules); err != nil || strings.Contains(string(b), rid) {
		t.Fatalf("rules file after the revoke: %v\n%s", err, b)
	}
	if out := check("python3", "-c", "print(5)"); strings.Contains(out, "ALLOW") {
		t.Fatalf("after the rule grant was revoked: %s", out)
	}
	// A grants rules file among the rules policyd loads is refused at start.
	out, err = e.cmd("policyd", "--grant-rules", filepath.Join(e.home, "rules", "grants.rules")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "among the rules files policyd loads") {
		t.Fatalf("policyd with its grants rules file among its rules: %v\n%s", err, out)
	}
}
