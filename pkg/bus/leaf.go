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

// LeafPermissions bound what the worker host whose leaf key is pub may do on
// the hub, seen from the worker (nats-server reverses them on the hub's
// side). A worker runs sandboxd (and profiled, its workspaces being local);
// its agents use the client and approver keys. So a worker may send
// sandboxd's and profiled's audit events, policy checks, run claims, audit
// queries and service pings, and receive service pings and the replies to
// its own components, nothing else: a worker host taken over cannot forge
// policyd's or auditd's events, answer approvals, answer central policy
// checks, or read the audit stream.
//
// Replies are its own only. Its components' inboxes carry its tag, the
// leaf key (wire.LeafInbox; pkg/client adds it on a worker), and the hub
// sends it replies under those inboxes alone. It may write only into open
// inboxes (wire.OpenInbox: where service discovery and moat status gather
// answers from every server), never into the inbox of a request: so it
// neither reads nor forges the answers meant for a caller on the hub or on
// another worker (a decision, a run's output, an audit page).
//
// The worker's own busd still holds every local key to the usual
// [Permissions]; these bound the worker as a whole.
func LeafPermissions(pub string) *server.Permissions {
	var inboxes []string
	for _, role := range []string{home.RoleSandboxd, home.RoleProfiled, home.RoleAdmin} {
		inboxes = append(inboxes, wire.LeafInbox(InboxPrefix(role), pub)+".>")
	}
	for _, role := range wire.CallerRoles {
		inboxes = append(inboxes, wire.LeafInbox(wire.CallerInbox(role, "*"), pub)+".>")
	}
	var open []string
	for _, prefix := range append([]string{"_INBOX"}, inboxPrefixes()...) {
		for _, depth := range []string{".", ".*.", ".*.*."} {
			open = append(open, prefix+depth+wire.OpenInboxToken+".>")
		}
	}
	return &server.Permissions{
		Publish: &server.SubjectPermission{
			Allow: concat(discovery, open, []string{
				wire.AuditSubject(home.RoleSandboxd, ">"), wire.AuditSubject(home.RoleProfiled, ">"),
				wire.SubjectCheck, wire.SubjectCheckResolved, wire.SubjectRunClaim + ".*", wire.SubjectRunLive + ".*", wire.SubjectApprovals,
				wire.SubjectAuditQuery, wire.SubjectAuditVerify, wire.SubjectAuditStats,
			}),
		},
		Subscribe: &server.SubjectPermission{
			Allow: concat(inboxes, discovery, []string{wire.SubjectAuditCkpt}),
		},
	}
}

// inboxPrefixes are every role's inbox prefix.
func inboxPrefixes() []string {
	var out []string
	for _, role := range home.Roles {
		out = append(out, InboxPrefix(role))
	}
	return out
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
