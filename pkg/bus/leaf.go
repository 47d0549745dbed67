package bus

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// LeafPermissions bound what a worker host's leaf connection may do on the
// hub, seen from the worker (nats-server reverses them on the hub's side).
// A worker runs sandboxd (and profiled, its workspaces being local); its
// agents use the client and approver keys. So a worker may send sandboxd's
// and profiled's audit events, policy checks, run claims, audit queries and
// replies, and receive replies and service pings, nothing else: a worker
// host taken over cannot forge policyd's or auditd's events, answer
// approvals, answer central policy checks, or read the audit stream.
//
// The worker's own busd still holds every local key to the usual
// [Permissions]; these bound the worker as a whole.
func LeafPermissions() *server.Permissions {
	inboxes := []string{"_INBOX.>"}
	for _, role := range []string{home.RoleSandboxd, home.RoleProfiled, home.RoleClient, home.RoleApprover, home.RoleBenchd} {
		inboxes = append(inboxes, InboxPrefix(role)+".>")
	}
	return &server.Permissions{
		Publish: &server.SubjectPermission{
			Allow: concat(inboxes, []string{
				wire.AuditSubject(home.RoleSandboxd, ">"), wire.AuditSubject(home.RoleProfiled, ">"),
				wire.SubjectCheck, wire.SubjectCheckResolved, wire.SubjectRunClaim + ".*", wire.SubjectRunLive + ".*", wire.SubjectApprovals,
				wire.SubjectAuditQuery, wire.SubjectAuditVerify, wire.SubjectAuditStats,
				"$SRV.>", wire.SubjectBusServers, InboxPrefix(home.RoleAdmin) + ".>",
			}),
		},
		Subscribe: &server.SubjectPermission{
			Allow: concat(inboxes, []string{"$SRV.>", wire.SubjectBusServers, wire.SubjectAuditCkpt}),
		},
	}
}

// localConnections are the connection types a component's key may use: it
// is never a leaf's key.
var localConnections = map[string]struct{}{"STANDARD": {}, "IN_PROCESS": {}}

// NewLeafKey writes a fresh worker leaf seed to file (mode 0600, refusing to
// replace one) and returns its public key, which the operator puts in the
// hub's MOAT_HOME/leaves/<host>.pub.
func NewLeafKey(file string) (string, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return "", err
	}
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return "", err
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("%s exists: a worker keeps its leaf key; delete it first to make a new one (and replace its .pub on the hub)", file)
	}
	if err != nil {
		return "", err
	}
	if _, err := f.Write(append(seed, '\n')); err != nil {
		f.Close()
		return "", err
	}
	return pub, f.Close()
}
