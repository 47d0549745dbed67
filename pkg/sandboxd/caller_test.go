//go:build linux

package sandboxd_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/sandboxd"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/moatsec/moat/test/testbin"
	"github.com/nats-io/nats.go"
)

// runCaller is a run's caller speaking the run protocol with raw nats.go:
// its own connection and reply subject, every message sandboxd sends there
// on msgs.
type runCaller struct {
	nc    *nats.Conn
	reply string
	msgs  chan *nats.Msg
	req   *nats.Msg
}

func newRunCaller(t *testing.T, rs *runStack, rr *wire.RunRequest) *runCaller {
	t.Helper()
	nc := rs.Conn(t, home.RoleClient)
	c := &runCaller{nc: nc, reply: nc.NewInbox(), msgs: make(chan *nats.Msg, 64)}
	if _, err := nc.Subscribe(c.reply, func(m *nats.Msg) { c.msgs <- m }); err != nil {
		t.Fatal(err)
	}
	body, err := wire.Encode(wire.Msgpack, rr)
	if err != nil {
		t.Fatal(err)
	}
	c.req = nats.NewMsg(wire.SubjectRun)
	c.req.Reply, c.req.Data = c.reply, body
	c.req.Header.Set(wire.HeaderContentType, wire.ContentMsgpack)
	c.req.Header.Set(wire.HeaderRequestID, rr.RequestID)
	c.req.Header.Set(wire.HeaderAcceptInterim, "1")
	return c
}

func (c *runCaller) publish(t *testing.T, m *nats.Msg) {
	t.Helper()
	if err := c.nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	if err := c.nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// resume says again where the caller listens, as pkg/client does after its
// connection came back.
func (c *runCaller) resume(t *testing.T) {
	t.Helper()
	m := nats.NewMsg(wire.SubjectRunResume)
	m.Reply = c.reply
	m.Header.Set(wire.HeaderRequestID, c.req.Header.Get(wire.HeaderRequestID))
	c.publish(t, m)
}

// next is the next message on the caller's reply subject.
func (c *runCaller) next(t *testing.T, what string) *nats.Msg {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(time.Minute):
		t.Fatalf("%s: nothing came on the run's reply subject in a minute", what)
		return nil
	}
}

// TestResumeIsTheCallersAlone: a run's resume is keyed by its caller's
// reply subject and request id, not by the request id alone (which anyone
// holding the client key can read in the audit trail). Another connection
// sending a run under the victim's request id (refused with 409), or the
// victim's own request sent again (409 too), must not take the victim's
// place: each resume of the victim's still gets a heartbeat for its run,
// and the run goes on to its result. The run's own heartbeats are held
// back, so every heartbeat heard answers a resume.
func TestResumeIsTheCallersAlone(t *testing.T) {
	sandboxd.HoldHeartbeats(t)
	rs := startRunStack(t, time.Second)
	const id = "req-resume-victim"
	victim := newRunCaller(t, rs, &wire.RunRequest{RequestID: id, Profile: "workspace-write", Workspace: rs.ws,
		Argv: []string{"sh", "-c", "touch started; while [ ! -e go ]; do sleep 0.05; done; echo finished > marker"}})
	victim.publish(t, victim.req)
	testbin.Eventually(t, 2*time.Minute, "the victim's run started", func() error {
		_, err := os.Stat(filepath.Join(rs.ws, "started"))
		return err
	})

	heartbeat := func(what string) {
		t.Helper()
		victim.resume(t)
		m := victim.next(t, what)
		if m.Header.Get(wire.HeaderHeartbeat) == "" || m.Reply == "" {
			t.Fatalf("%s: got %v %q, want a heartbeat with the run's control subject", what, m.Header, m.Data)
		}
	}
	heartbeat("resume before anyone else used the id")

	// Another caller under the victim's id: refused, and its run's end
	// (its caller closed before the answer went out) takes nothing away.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := rs.Client(t, home.RoleClient).Run(ctx, &wire.RunRequest{RequestID: id, Profile: "workspace-write", Workspace: rs.ws,
		Argv: []string{"sh", "-c", "touch intruder"}}, nil)
	if wire.CodeOf(err) != wire.CodeConflict {
		t.Fatalf("a run under the victim's id from another connection: %v, want 409", err)
	}
	heartbeat("resume after another connection's run under the same id")

	// The victim's own request sent again, on its own reply subject: 409
	// there, and the run it refers to keeps its resume.
	again := nats.NewMsg(wire.SubjectRun)
	again.Reply, again.Data = victim.reply, victim.req.Data
	for k, v := range victim.req.Header {
		again.Header[k] = v
	}
	again.Header.Set(wire.HeaderResent, "1")
	victim.publish(t, again)
	if m := victim.next(t, "the request sent again"); m.Header.Get(wire.HeaderErrorCode) != "409" {
		t.Fatalf("the victim's request sent again: %v %q, want 409", m.Header, m.Data)
	}
	heartbeat("resume after the caller's own request sent again")

	if err := os.WriteFile(filepath.Join(rs.ws, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	m := victim.next(t, "the run's result")
	var res wire.RunResult
	if m.Header.Get(wire.HeaderErrorCode) != "" || wire.Decode(wire.Msgpack, m.Data, &res) != nil || res.ExitCode != 0 || res.RequestID != id {
		t.Fatalf("the victim's result: %v %q, want exit 0 for %s", m.Header, m.Data, id)
	}
	if b, err := os.ReadFile(filepath.Join(rs.ws, "marker")); err != nil || string(b) != "finished\n" {
		t.Fatalf("marker %q %v: the victim's run did not finish", b, err)
	}
	if _, err := os.Stat(filepath.Join(rs.ws, "intruder")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("intruder: %v: a run under a claimed id ran", err)
	}
}
