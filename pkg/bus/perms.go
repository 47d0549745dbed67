package bus

import (
	"time"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats-server/v2/server"
)

// InboxPrefix is the private reply prefix of a role (see wire.InboxPrefix).
var InboxPrefix = wire.InboxPrefix

// responseWindow bounds how long a responder may take to answer one request.
// It must outlast the longest run plus an approval wait.
const responseWindow = 2 * time.Hour

// The client-facing request subjects: what an agent's key may publish.
var clientRequests = []string{
	wire.SubjectResolve, wire.SubjectResolveResume, wire.SubjectProfileList, wire.SubjectCheck, wire.SubjectCheckResume, wire.SubjectRun, wire.SubjectRunResume,
	wire.SubjectAuditQuery, wire.SubjectAuditVerify, wire.SubjectAuditStats,
}

// Service discovery: anyone may ping; only a service may answer under its name.
var discovery = []string{"$SRV.PING", "$SRV.PING.>", "$SRV.INFO", "$SRV.INFO.>", "$SRV.STATS", "$SRV.STATS.>", wire.SubjectBusServers}

// anchorStream is the stream behind the anchor bucket.
const anchorStream = "KV_" + wire.AuditAnchorBucket

// grantsStream is the stream behind the grants bucket.
const grantsStream = "KV_" + wire.GrantsBucket

// streamInfo lets a role read the audit stream's state (moat status, benchd).
const streamInfo = "$JS.API.STREAM.INFO." + wire.AuditStream

// Permissions returns the least-privilege permissions of role, or nil for admin
// (everything). The table is the security boundary between components:
//
//   - only profiled answers moat.profile.>, only policyd moat.policy.>, only
//     sandboxd moat.sandbox.>, only auditd moat.audit.{query,verify,stats};
//   - only daemons publish audit events, each under its own source;
//   - only auditd reads the MOAT_AUDIT stream through a consumer;
//   - only approver (and admin) answer approvals, so an agent cannot approve itself;
//   - only approver (and admin) list and revoke grants, and only policyd
//     reads and writes the grants bucket;
//   - only sandboxd (and admin) send moat.policy.check.resolved, the checks
//     whose profile grants may cover;
//   - each daemon receives replies only on its own inbox prefix.
func Permissions(role string) *server.Permissions {
	switch role {
	case home.RoleAdmin:
		return nil
	case home.RoleClient:
		return &server.Permissions{
			Publish: &server.SubjectPermission{
				Allow: concat(clientRequests, discovery, []string{streamInfo}),
				Deny:  []string{wire.SubjectAuditEvents + ".>", wire.SubjectApprovalAns + ".>"},
			},
			Subscribe: &server.SubjectPermission{
				Allow: []string{InboxPrefix(role) + ".>", "_INBOX.>", wire.SubjectAuditCkpt},
			},
			Response: callerResponses(),
		}
	case home.RoleApprover:
		return &server.Permissions{
			Publish: &server.SubjectPermission{
				Allow: concat(clientRequests, discovery, []string{wire.SubjectApprovalAns + ".>", wire.SubjectApprovals, wire.SubjectGrants, wire.SubjectRevoke}),
				Deny:  []string{wire.SubjectAuditEvents + ".>"},
			},
			Subscribe: &server.SubjectPermission{
				Allow: []string{InboxPrefix(role) + ".>", "_INBOX.>", wire.SubjectApprovalAsk + ".>"},
			},
			Response: callerResponses(),
		}
	case home.RoleBenchd:
		return &server.Permissions{
			Publish: &server.SubjectPermission{
				Allow: concat(clientRequests, discovery, []string{streamInfo, wire.SubjectApprovalAns + ".>", wire.SubjectApprovals, wire.AuditSubject(role, ">")}),
			},
			Subscribe: &server.SubjectPermission{
				Allow: []string{InboxPrefix(role) + ".>", wire.SubjectApprovalAsk + ".>", wire.SubjectAuditCkpt},
			},
			Response: callerResponses(),
		}
	}
	p := daemon(role)
	switch role {
	case home.RoleProfiled:
		p.Subscribe.Allow = append(p.Subscribe.Allow, "moat.profile.>")
		// A resolution's caller may resume it and send it again, on its one
		// reply subject; nats-server counts each delivery after the first
		// with that reply subject as a message sent there, so a bound of 1
		// refused the answer that followed them (the window still bounds it).
		p.Response.MaxMsgs = -1
	case home.RolePolicyd:
		p.Subscribe.Allow = append(p.Subscribe.Allow, "moat.policy.>", wire.SubjectApprovalAns+".>")
		p.Publish.Allow = append(p.Publish.Allow, wire.SubjectResolve, wire.SubjectResolveResume, wire.SubjectApprovalAsk+".>")
		// The grants bucket: read, watch (an ordered consumer) and write.
		const js = "$JS.API."
		p.Publish.Allow = append(p.Publish.Allow,
			js+"STREAM.INFO."+grantsStream,
			js+"DIRECT.GET."+grantsStream+".>",
			js+"STREAM.MSG.GET."+grantsStream,
			js+"CONSUMER.*."+grantsStream,
			js+"CONSUMER.*."+grantsStream+".>",
			"$JS.FC."+grantsStream+".>",
			"$KV."+wire.GrantsBucket+".>")
		// "A person is being asked" heartbeats, then the decision.
		p.Response.MaxMsgs = -1
	case home.RoleSandboxd:
		p.Subscribe.Allow = append(p.Subscribe.Allow, "moat.sandbox.>")
		p.Publish.Allow = append(p.Publish.Allow, wire.SubjectResolve, wire.SubjectResolveResume, wire.SubjectCheck, wire.SubjectCheckResume,
			wire.SubjectCheckResolved, // its own resolved profile: grants may cover it
			wire.SubjectRunClaim+".*", // a request id runs once (MOAT_RUNS)
			// and a claim sent again is recognised by reading it back
			"$JS.API.STREAM.INFO."+wire.RunsStream, "$JS.API.STREAM.MSG.GET."+wire.RunsStream,
			// each sandboxd's liveness, and the claims of a lost one read
			// through a consumer to be closed (nothing beyond MSG.GET's reach)
			wire.SubjectRunLive+".*",
			"$JS.API.CONSUMER.CREATE."+wire.RunsStream+".>", "$JS.API.CONSUMER.MSG.NEXT."+wire.RunsStream+".>",
			"$JS.API.CONSUMER.INFO."+wire.RunsStream+".>", "$JS.API.CONSUMER.DELETE."+wire.RunsStream+".>")
		// Heartbeats and output chunks while a command runs, then the result.
		p.Response.MaxMsgs = -1
	case home.RoleAuditd:
		p.Subscribe.Allow = append(p.Subscribe.Allow, wire.SubjectAuditQuery, wire.SubjectAuditVerify, wire.SubjectAuditStats)
		const js = "$JS.API."
		p.Publish.Allow = append(p.Publish.Allow,
			js+"INFO", streamInfo,
			js+"CONSUMER.INFO."+wire.AuditStream+".>",
			js+"CONSUMER.CREATE."+wire.AuditStream+".>",
			js+"CONSUMER.DURABLE.CREATE."+wire.AuditStream+".>",
			js+"CONSUMER.MSG.NEXT."+wire.AuditStream+".>",
			"$JS.ACK."+wire.AuditStream+".>",
			wire.SubjectAuditCkpt,
			// The anchor: read and write the latest checkpoint, nothing else.
			js+"STREAM.INFO."+anchorStream,
			js+"DIRECT.GET."+anchorStream+".>",
			js+"STREAM.MSG.GET."+anchorStream,
			"$KV."+wire.AuditAnchorBucket+"."+wire.AuditAnchorKey)
	default:
		// An unknown role gets nothing: it may connect but neither publish nor subscribe.
		return &server.Permissions{
			Publish:   &server.SubjectPermission{Deny: []string{">"}},
			Subscribe: &server.SubjectPermission{Deny: []string{">"}},
		}
	}
	return p
}

// daemon is what every service shares: answer requests it received, answer
// discovery under its own name, receive replies on its own inbox, and publish
// audit events under its own source.
func daemon(role string) *server.Permissions {
	return &server.Permissions{
		Publish: &server.SubjectPermission{
			Allow: []string{wire.AuditSubject(role, ">")},
		},
		Subscribe: &server.SubjectPermission{
			Allow: []string{InboxPrefix(role) + ".>", "$SRV.*", "$SRV.*." + role, "$SRV.*." + role + ".*", wire.SubjectBusStopping},
		},
		Response: &server.ResponsePermission{MaxMsgs: 1, Expires: responseWindow},
	}
}

// callerResponses lets a caller answer what a daemon sent it with a reply
// subject: a run's or an approval wait's heartbeats, answered with acks,
// signals passed on and a cancel (the run protocol, pkg/wire/run.go). Only
// the receiver of a heartbeat learns its control subject, so only the run's
// own caller can signal or stop it. The number is not bounded: nats-server
// counts every message to a reply subject since its first delivery (each
// heartbeat's included), so any bound refused some ack, signal or cancel
// of a long run.
func callerResponses() *server.ResponsePermission {
	return &server.ResponsePermission{MaxMsgs: -1, Expires: responseWindow}
}

// CallerPermissions are the permissions of one connection of a caller role
// (wire.CallerRoles) that claimed inbox id: the role's, with its inbox
// narrowed to the connection's own, wire.CallerInbox(role, id). With no id
// (the NATS CLI), the standard _INBOX. prefix if the role has it; never the
// role's whole prefix, so no connection reads another's answers or run output.
func CallerPermissions(role, id string) *server.Permissions {
	p := Permissions(role)
	var allow []string
	standard := false
	for _, s := range p.Subscribe.Allow {
		switch s {
		case InboxPrefix(role) + ".>":
			continue
		case "_INBOX.>":
			standard = true
			continue
		}
		allow = append(allow, s)
	}
	switch {
	case id != "":
		allow = append(allow, wire.CallerInbox(role, id)+".>")
	case standard:
		allow = append(allow, "_INBOX.>")
	}
	p.Subscribe.Allow = allow
	return p
}

func concat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}
