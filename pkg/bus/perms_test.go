package bus_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// attempt runs op on a fresh connection as role and reports the server's
// permissions error, if any.
func attempt(t *testing.T, s *bustest.Stack, role string, op func(nc *nats.Conn) error) error {
	t.Helper()
	nc := s.Conn(t, role)
	if err := op(nc); err != nil {
		return err
	}
	if err := nc.Flush(); err != nil {
		return err
	}
	return nc.LastError()
}

func sub(subject string) func(*nats.Conn) error {
	return func(nc *nats.Conn) error { _, err := nc.Subscribe(subject, func(*nats.Msg) {}); return err }
}

func queueSub(subject string) func(*nats.Conn) error {
	return func(nc *nats.Conn) error { _, err := nc.QueueSubscribe(subject, "q", func(*nats.Msg) {}); return err }
}

func pub(subject string) func(*nats.Conn) error {
	return func(nc *nats.Conn) error { return nc.Publish(subject, []byte("x")) }
}

func TestPermissions(t *testing.T) {
	s := bustest.Start(t)
	tests := []struct {
		role    string
		what    string
		op      func(*nats.Conn) error
		allowed bool
	}{
		{home.RoleClient, "answer policy checks", queueSub(wire.SubjectCheck), false},
		{home.RoleClient, "answer profile resolution", sub(wire.SubjectResolve), false},
		{home.RoleClient, "answer sandbox runs", queueSub(wire.SubjectRun), false},
		{home.RoleClient, "forge an audit event", pub("moat.audit.evt.x"), false},
		{home.RoleClient, "forge a profiled event", pub("moat.audit.evt.profiled.profile.resolved"), false},
		{home.RoleClient, "approve its own prompt", pub(wire.ApprovalAnswerSubject("abc")), false},
		{home.RoleClient, "read profiled's replies", sub("_INBOX_profiled.>"), false},
		{home.RoleClient, "read sandboxd's replies", sub("_INBOX_sandboxd.>"), false},
		{home.RoleClient, "consume the audit stream", pub("$JS.API.CONSUMER.CREATE." + wire.AuditStream), false},
		{home.RoleClient, "delete the audit stream", pub("$JS.API.STREAM.DELETE." + wire.AuditStream), false},
		{home.RoleClient, "impersonate a service on ping", sub("$SRV.PING.profiled"), false},
		{home.RoleClient, "ask for a resolution", pub(wire.SubjectResolve), true},
		{home.RoleClient, "ask for a check", pub(wire.SubjectCheck), true},
		{home.RoleClient, "ask for a run", pub(wire.SubjectRun), true},
		{home.RoleClient, "ping services", pub("$SRV.PING"), true},
		{home.RoleProfiled, "answer profile resolution", queueSub(wire.SubjectResolve), true},
		{home.RoleProfiled, "publish its own events", pub("moat.audit.evt.profiled.profile.resolved"), true},
		{home.RoleProfiled, "publish policyd's events", pub("moat.audit.evt.policyd.policy.decision"), false},
		{home.RoleProfiled, "answer policy checks", queueSub(wire.SubjectCheck), false},
		{home.RoleProfiled, "answer another's ping", sub("$SRV.PING.policyd"), false},
		{home.RoleProfiled, "answer its own ping", sub("$SRV.PING.profiled"), true},
		{home.RolePolicyd, "answer policy checks", queueSub(wire.SubjectCheck), true},
		{home.RolePolicyd, "ask for approval", pub(wire.ApprovalAskSubject("abc")), true},
		{home.RolePolicyd, "answer its own approval", pub(wire.ApprovalAnswerSubject("abc")), false},
		{home.RolePolicyd, "answer sandbox runs", queueSub(wire.SubjectRun), false},
		{home.RoleSandboxd, "answer sandbox runs", queueSub(wire.SubjectRun), true},
		{home.RoleSandboxd, "ask for a check", pub(wire.SubjectCheck), true},
		{home.RoleSandboxd, "answer policy checks", queueSub(wire.SubjectCheck), false},
		{home.RoleSandboxd, "publish on the old output subjects", pub("moat.run.r1.out"), false},
		{home.RoleClient, "read the old output subjects", sub("moat.run.*.out"), false},
		{home.RoleBenchd, "read the old output subjects", sub("moat.run.*.out"), false},
		{home.RoleClient, "cancel a run it was not told of", pub("_INBOX_sandboxd.abc"), false},
		{home.RoleApprover, "read a client's run output (its inbox)", sub("_INBOX_client.>"), false},
		{home.RoleBenchd, "read a client's run output (its inbox)", sub("_INBOX_client.>"), false},
		{home.RoleApprover, "read the old output subjects", sub("moat.run.*.out"), false},
		{home.RoleAuditd, "answer audit queries", queueSub(wire.SubjectAuditQuery), true},
		{home.RoleAuditd, "publish a checkpoint", pub(wire.SubjectAuditCkpt), true},
		{home.RoleAuditd, "delete the audit stream", pub("$JS.API.STREAM.DELETE." + wire.AuditStream), false},
		{home.RoleAuditd, "write the anchor", pub("$KV." + wire.AuditAnchorBucket + "." + wire.AuditAnchorKey), true},
		{home.RoleAuditd, "delete the anchor bucket", pub("$JS.API.STREAM.DELETE.KV_" + wire.AuditAnchorBucket), false},
		{home.RoleAuditd, "purge the anchor", pub("$JS.API.STREAM.PURGE.KV_" + wire.AuditAnchorBucket), false},
		{home.RoleClient, "write the anchor", pub("$KV." + wire.AuditAnchorBucket + "." + wire.AuditAnchorKey), false},
		{home.RoleSandboxd, "write the anchor", pub("$KV." + wire.AuditAnchorBucket + "." + wire.AuditAnchorKey), false},
		{home.RoleApprover, "answer an approval", pub(wire.ApprovalAnswerSubject("abc")), true},
		{home.RoleApprover, "see approval questions", sub(wire.SubjectApprovalAsk + ".>"), true},
		{home.RoleApprover, "forge an audit event", pub("moat.audit.evt.approver.x"), false},
		{home.RoleBenchd, "answer policy checks", queueSub(wire.SubjectCheck), false},
		{home.RoleSandboxd, "claim a request id", pub(wire.SubjectRunClaim + ".abc"), true},
		{home.RoleClient, "claim a request id (and so block its run)", pub(wire.SubjectRunClaim + ".abc"), false},
		{home.RolePolicyd, "claim a request id", pub(wire.SubjectRunClaim + ".abc"), false},
		{home.RoleClient, "ask the servers how they stand", pub(wire.SubjectBusServers), true},
		{home.RoleClient, "answer as a server", sub(wire.SubjectBusServers), false},
		{home.RoleClient, "revoke a grant", pub(wire.SubjectRevoke), false},
		{home.RoleClient, "list grants", pub(wire.SubjectGrants), false},
		{home.RoleClient, "write a grant", pub("$KV." + wire.GrantsBucket + ".g1"), false},
		{home.RoleApprover, "revoke a grant", pub(wire.SubjectRevoke), true},
		{home.RoleApprover, "list grants", pub(wire.SubjectGrants), true},
		{home.RoleApprover, "write a grant past policyd", pub("$KV." + wire.GrantsBucket + ".g1"), false},
		{home.RolePolicyd, "write a grant", pub("$KV." + wire.GrantsBucket + ".g1"), true},
		{home.RolePolicyd, "delete the grants bucket", pub("$JS.API.STREAM.DELETE.KV_" + wire.GrantsBucket), false},
		{home.RoleSandboxd, "write a grant", pub("$KV." + wire.GrantsBucket + ".g1"), false},
		{home.RoleSandboxd, "send a check grants may cover", pub(wire.SubjectCheckResolved), true},
		{home.RoleClient, "send a check grants may cover", pub(wire.SubjectCheckResolved), false},
		{home.RoleApprover, "send a check grants may cover", pub(wire.SubjectCheckResolved), false},
		{home.RoleBenchd, "send a check grants may cover", pub(wire.SubjectCheckResolved), false},
		{home.RolePolicyd, "answer checks grants may cover", queueSub(wire.SubjectCheckResolved), true},
		{home.RoleAdmin, "inspect everything", sub(">"), true},
		{home.RoleAdmin, "answer an approval", pub(wire.ApprovalAnswerSubject("abc")), true},
	}
	for _, tt := range tests {
		t.Run(tt.role+" may not "+tt.what, func(t *testing.T) {
			err := attempt(t, s, tt.role, tt.op)
			switch {
			case tt.allowed && err != nil:
				t.Fatalf("%s could not %s: %v", tt.role, tt.what, err)
			case !tt.allowed && !errors.Is(err, nats.ErrPermissionViolation):
				t.Fatalf("%s could %s (err %v)", tt.role, tt.what, err)
			}
		})
	}
}

func TestUnknownConnectionsRefused(t *testing.T) {
	s := bustest.Start(t)
	if nc, err := nats.Connect(s.URL); err == nil {
		nc.Close()
		t.Fatal("a connection without a key was admitted")
	} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("err = %v, want an authorization violation", err)
	}
	kp, _ := nkeys.CreateUser()
	seed, _ := kp.Seed()
	path := filepath.Join(t.TempDir(), "stranger.nk")
	os.WriteFile(path, seed, 0o600)
	opt, err := nats.NkeyOptionFromSeed(path)
	if err != nil {
		t.Fatal(err)
	}
	if nc, err := nats.Connect(s.URL, opt); err == nil {
		nc.Close()
		t.Fatal("a key moat init did not write was admitted")
	}
}

func TestAuditStreamOnlyAuditdConsumes(t *testing.T) {
	s := bustest.Start(t)
	cfg := jetstream.ConsumerConfig{Durable: "auditd", AckPolicy: jetstream.AckExplicitPolicy}
	for _, role := range []string{home.RoleClient, home.RoleProfiled, home.RoleSandboxd, home.RoleBenchd} {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		js, _ := jetstream.New(s.Conn(t, role))
		if _, err := js.CreateOrUpdateConsumer(ctx, wire.AuditStream, cfg); err == nil {
			t.Errorf("%s created a consumer on %s", role, wire.AuditStream)
		}
		cancel()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	js, _ := jetstream.New(s.Conn(t, home.RoleAuditd))
	if _, err := js.CreateOrUpdateConsumer(ctx, wire.AuditStream, cfg); err != nil {
		t.Fatalf("auditd cannot consume: %v", err)
	}
}

func TestAuditStreamPersistsAndIsIdempotent(t *testing.T) {
	s := bustest.Start(t)
	nc := s.Conn(t, home.RoleProfiled)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.Publish(ctx, "moat.audit.evt.profiled.test", []byte("e1")); err != nil {
		t.Fatalf("publish before auditd ever ran: %v", err)
	}
	s.Server.Close()
	s2 := bustest.StartAt(t, s.Home) // same store: stream recreated idempotently, event kept
	ajs, _ := jetstream.New(s2.Conn(t, home.RoleAdmin))
	st, err := ajs.Stream(ctx, wire.AuditStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 || info.Config.Retention != jetstream.WorkQueuePolicy || info.Config.Storage != jetstream.FileStorage || info.Config.Duplicates == 0 {
		t.Fatalf("after restart: %d msgs, config %+v", info.State.Msgs, info.Config)
	}
}
