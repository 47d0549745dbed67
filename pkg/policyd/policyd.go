// Package policyd is the policyd daemon: the micro service that answers
// moat.policy.check with a [policy.Engine] decision, asks a person when a
// prompt may be approved, and records every decision in the audit stream
// before it answers.
//
// Invariants:
//   - every decision is sent to the audit stream before it is answered; an
//     allow is answered only once its record is acked (a caller may act on
//     it) — or, to a caller that asks with a token from its inbox
//     (wire.HeaderRecordAck), while the stream is steady and no person
//     gave it, at once, JetStream's ack of its record going to that caller
//     under the token, whose allow stands only once the ack has come — a
//     deny or prompt's ack is awaited asynchronously; if the event
//     cannot be recorded, the answer is a deny (audit-unavailable). An allow
//     for a run sandboxd asked about (moat.policy.check.resolved, not a
//     network ask) is acted on only by sandboxd, which runs nothing before
//     its own run.decision record is acked: it is put on record in the
//     background instead, sent again until acked like any allow's record
//     (a bus restart loses none), and Stop waits for it — except an allow
//     a grant gave, whose use is always on record before the answer;
//   - evaluation has a deadline: past it the answer is a deny (policy-timeout);
//   - a prompt (never a deny) that a grant covers is allowed without asking,
//     the use spent in the grants bucket and on record first (grants.go);
//     grants are consulted, and made, only under a profile policyd resolved
//     itself through profiled or one sandboxd sent on
//     moat.policy.check.resolved (only its key may): never under a profile
//     a caller supplied on moat.policy.check;
//   - a prompt waits for a person at most the approval timeout, holding one
//     of MaxApprovals places and no request slot, never holding up other
//     checks; the wait ends at once when its caller goes away or policyd
//     stops (a deny, approval-cancelled);
//   - an evaluation past its deadline is a deny; at most maxOverdue keep
//     running unseen, and Stop joins them;
//   - a check is decided once: a caller that lost its answer with the bus
//     (wire.SubjectCheckResume) gets the same answer sent again, to the
//     check's own reply subject only, never a second decision or record
//     (service.Resumable).
package policyd

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moatsec/moat/pkg/audit"
	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/policy"
	"github.com/moatsec/moat/pkg/service"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// Version is policyd's service version.
const Version = "0.1.0"

// Defaults for Config.
const (
	DefaultApprovalTimeout = 60 * time.Second
	DefaultDeadline        = 2 * time.Second
	DefaultMaxApprovals    = 256
	// maxOverdue is how many evaluations may still run past their deadline
	// (the engine cannot be interrupted) before new checks are denied at
	// once instead of starting more.
	maxOverdue = 16
)

// Config configures the daemon.
type Config struct {
	Engine          *policy.Engine
	ApprovalTimeout time.Duration    // how long a prompt waits for a person
	Deadline        time.Duration    // evaluation, profile resolution included
	MaxApprovals    int              // approvals waiting at once; past it a prompt is denied (approval-busy)
	MaxInflight     int              // checks evaluated at once (the service's bound); default 1024
	Sanitizer       *audit.Sanitizer // sanitizes events before they leave the process
	// RulesFile is where the "rule" grants in force are written, a
	// prefix_rule line each (empty: a rule grant is refused). It must not be
	// among the rules files the engine loads: a line there would apply to
	// every workspace and profile (RulesWatcher.Loads tells).
	RulesFile string
	Logger    *slog.Logger
}

// Daemon serves policy checks on the bus.
type Daemon struct {
	cfg      Config
	nc       *nats.Conn
	svc      *service.Service
	audit    *audit.Publisher
	profiles *client.Client
	cache    profileCache // resolved profiles by hash (profiles.go)
	log      *slog.Logger
	mu       sync.Mutex
	pending  map[string]*wire.ApprovalAsk // approval id → question, while it waits
	waiting  chan struct{}                // a place per approval waiting, MaxApprovals of them
	stopping chan struct{}                // closed by Stop: waits end at once
	stopOnce sync.Once
	evals    sync.WaitGroup // evaluations, joined by Stop
	records  sync.WaitGroup // decisions recorded in the background (recordLater), joined by Stop
	grants   *grants        // the grants bucket, watched into memory
	rules    *rulesRecord   // the rule grants written out, nil without Config.RulesFile
	overdue  atomic.Int32   // evaluations still running past their deadline
	// noWorkspace is an empty directory standing in for the workspace of a
	// check that names none.
	noWorkspace string
}

// Start registers the service on nc.
func Start(nc *nats.Conn, cfg Config) (*Daemon, error) {
	if cfg.ApprovalTimeout <= 0 {
		cfg.ApprovalTimeout = DefaultApprovalTimeout
	}
	if cfg.Deadline <= 0 {
		cfg.Deadline = DefaultDeadline
	}
	if cfg.MaxApprovals <= 0 {
		cfg.MaxApprovals = DefaultMaxApprovals
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	d := &Daemon{cfg: cfg, nc: nc, log: cfg.Logger, pending: map[string]*wire.ApprovalAsk{},
		waiting: make(chan struct{}, cfg.MaxApprovals), stopping: make(chan struct{}),
		profiles: client.FromConn(nc, cfg.Deadline)}
	var err error
	if d.noWorkspace, err = os.MkdirTemp("", "moat-policyd-no-workspace-"); err != nil {
		return nil, fmt.Errorf("make the stand-in workspace: %w", err)
	}
	// The grants bucket is opened first: from service.New on, policyd
	// answers $SRV.PING, and `moat status` counts it ready.
	var rulesChanged func(list func() []wire.Grant)
	if cfg.RulesFile != "" {
		d.rules = &rulesRecord{path: cfg.RulesFile}
		rulesChanged = d.syncRules
	}
	if d.grants, err = startGrants(nc, cfg.Deadline, cfg.Logger.Warn, rulesChanged); err != nil {
		return nil, err
	}
	svc, err := service.New(nc, service.Config{
		Name: wire.ServicePolicyd, Version: Version, Logger: cfg.Logger, MaxInflight: cfg.MaxInflight,
		Description: "decides allow, prompt or deny for each command, and explains why",
	})
	if err != nil {
		d.grants.stop()
		return nil, err
	}
	d.svc = svc
	if d.audit, err = audit.NewPublisher(nc, wire.ServicePolicyd, svc.ID()); err == nil {
		d.audit.SetLogger(cfg.Logger)
		d.audit.SetSanitizer(cfg.Sanitizer)
		err = svc.Resumable(wire.SubjectCheckResume)
		if err == nil {
			err = svc.HandleKept("check", wire.SubjectCheck, func(ctx context.Context, req *service.Request) (any, error) {
				return d.check(ctx, req, false)
			})
		}
		if err == nil {
			err = svc.HandleKept("check-resolved", wire.SubjectCheckResolved, func(ctx context.Context, req *service.Request) (any, error) {
				return d.check(ctx, req, true)
			})
		}
		if err == nil {
			err = svc.HandleAll("approvals", wire.SubjectApprovals, d.approvals)
		}
		if err == nil {
			err = svc.Handle("grants", wire.SubjectGrants, d.listGrants)
		}
		if err == nil {
			err = svc.Handle("revoke", wire.SubjectRevoke, d.revokeGrant)
		}
	}
	if err != nil {
		svc.Stop()
		d.grants.stop()
		return nil, err
	}
	return d, nil
}

// ID is this instance's service id.
func (d *Daemon) ID() string { return d.svc.ID() }

// Stop stops taking requests, ends every approval wait (a deny, recorded
// and answered), and waits for the checks in flight, the evaluations
// they started and the decisions they record in the background.
// A second Stop does nothing.
func (d *Daemon) Stop() error {
	var err error
	d.stopOnce.Do(func() {
		close(d.stopping)
		err = d.svc.Shutdown(context.Background())
		d.evals.Wait()
		d.records.Wait()
		d.grants.stop()
		os.Remove(d.noWorkspace)
	})
	return err
}

// check answers one check. fromSandboxd says it came on
// moat.policy.check.resolved, which only sandboxd's key may publish: its
// profile is the one profiled resolved for the run. Grants cover a prompt
// only under such a profile or one policyd resolves here (vouched).
func (d *Daemon) check(ctx context.Context, req *service.Request, fromSandboxd bool) (any, error) {
	start := time.Now()
	var cr wire.CheckRequest
	// sandboxd's check carries its run's environment, which a run request
	// may hold up to its own limit.
	limit := wire.MaxRequestBytes
	if fromSandboxd {
		limit = wire.MaxRunRequestBytes
	}
	if err := req.DecodeLimit(&cr, limit); err != nil {
		return nil, err
	}
	req.FillIDs(&cr.RequestID, &cr.SessionID)
	if cr.Net != nil {
		return d.checkNet(req, &cr, fromSandboxd, start) // a run's egress proxy asks (netask.go)
	}
	switch cr.Approval {
	case "", wire.ApprovalNever, wire.ApprovalOnRequest:
	default:
		return nil, wire.Errorf(wire.CodeBadRequest, "approval %q: want %q, %q or empty (report a prompt as is)", cr.Approval, wire.ApprovalNever, wire.ApprovalOnRequest)
	}
	dctx, cancel := context.WithTimeout(ctx, d.cfg.Deadline)
	defer cancel()
	prof, err := d.sentProfile(req, &cr)
	if err != nil {
		return nil, err
	}
	vouched := fromSandboxd
	if prof == nil {
		if cr.Workspace == "" {
			// A hand-typed check names no workspace: judge it as if in an
			// empty one (relative paths then point nowhere that matters).
			cr.Workspace, cr.Cwd = d.noWorkspace, ""
		}
		p, err := d.profiles.Resolve(dctx, &wire.ResolveRequest{Profile: cr.Profile.Name, Workspace: cr.Workspace,
			Cwd: cr.Cwd, SessionID: cr.SessionID, RequestID: cr.RequestID})
		if err != nil {
			return nil, err
		}
		prof, vouched = p, true
	}
	in := &policy.Input{Argv: cr.Argv, Cwd: cr.Cwd, Workspace: cr.Workspace, Profile: prof, Env: cr.Env}
	if err := in.Validate(); err != nil {
		return nil, err
	}
	dec := d.evaluate(dctx, in)
	personAsked := false
	if dec.Verdict == wire.VerdictPrompt && cr.Approval == wire.ApprovalOnRequest && vouched {
		dec = d.fromGrant(dctx, &cr, prof, dec) // only a prompt: a grant never lifts a deny
	}
	if dec.Verdict == wire.VerdictPrompt {
		switch cr.Approval {
		case wire.ApprovalNever:
			dec = withFirst(wire.VerdictDeny, wire.Reason{Rule: wire.ReasonApprovalNever,
				Message: "the command needs a person's approval and the caller allows none"}, dec)
		case wire.ApprovalOnRequest:
			dec, personAsked = d.ask(req, &cr, prof, dec, vouched), true
		}
	}
	if dec.Verdict == wire.VerdictAllow {
		dec.Net = d.cfg.Engine.Rules().Egress() // the run's egress proxy applies them (netrules.go)
	}
	dec.DecidedBy = d.svc.ID()
	dec.ElapsedUS = time.Since(start).Microseconds()
	ev := &wire.AuditEvent{Kind: wire.KindPolicyDecision, SessionID: cr.SessionID, RequestID: cr.RequestID,
		Profile: prof.Name, Argv: cr.Argv, Cwd: prof.Cwd, Verdict: dec.Verdict, Reasons: dec.Reasons,
		DurationUS: dec.ElapsedUS, Detail: map[string]any{"rules": ruleIDs(dec.Reasons), "workspace": prof.Workspace}}
	// An allow may be acted on by whoever asked (a hook lets an agent run
	// the command on it): it is answered only once its record is acked —
	// or at once to a caller that asked for the ack itself (ackTo), who
	// waits for it before taking the allow. That record goes once, so only
	// while the stream is steady, and never for an allow a person gave
	// (asked again, they would be asked twice). A deny or a prompt lets
	// nothing happen: its ack is awaited asynchronously. An allow sandboxd
	// asked for is recorded in the background: the run waits for
	// sandboxd's own record of the decision, acked before anything runs —
	// unless a grant gave it, whose use is on record before the answer, as
	// for any caller (grants_serve.go).
	ackTo := ""
	if dec.Verdict == wire.VerdictAllow && !fromSandboxd && !fromGrant(&dec) && !personAsked && d.audit.Steady() {
		ackTo = ackToCaller(req)
	}
	publish := func() error { return d.audit.PublishAsync(ev) }
	switch {
	case dec.Verdict == wire.VerdictAllow && fromSandboxd && !fromGrant(&dec):
		publish = func() error { d.recordLater(ev); return nil }
	case ackTo != "":
		publish = func() error {
			if err := d.audit.PublishAckedTo(ev, ackTo); err != nil {
				return err
			}
			req.SetReplyHeader(wire.HeaderRecordAck, ackTo)
			return nil
		}
	case dec.Verdict == wire.VerdictAllow:
		publish = func() error {
			// Within the evaluation deadline, so the caller hears the deny
			// before it gives up on its own.
			ctx, cancel := context.WithTimeout(context.Background(), d.cfg.Deadline)
			defer cancel()
			return d.audit.Publish(ctx, ev)
		}
	}
	if err := publish(); err != nil {
		d.log.Error("decision not recorded; answering deny", "request_id", cr.RequestID, "err", err)
		return withFirst(wire.VerdictDeny, wire.Reason{Rule: wire.ReasonAuditUnavailable,
			Message: "the decision could not be recorded (" + err.Error() + "), so nothing may run"}, dec), nil
	}
	return dec, nil
}

// recordLater puts ev on record in the background, sending it again while
// the stream does not answer (as Publish does, up to audit.RecordWait); a
// failure is logged, loudly. Stop waits for it.
func (d *Daemon) recordLater(ev *wire.AuditEvent) {
	d.records.Add(1)
	go func() {
		defer d.records.Done()
		if err := d.audit.Publish(context.Background(), ev); err != nil {
			d.log.Error("AUDIT GAP: decision not recorded", "request_id", ev.RequestID, "verdict", ev.Verdict, "err", err)
		}
	}()
}

// evaluate runs the engine under the deadline. Evaluation is bounded work,
// but a pathological script must not hold an answer past the deadline: the
// answer is then a deny, and the evaluation, which cannot be interrupted,
// finishes on its own — counted, so that at most maxOverdue run at once, and
// joined by Stop.
func (d *Daemon) evaluate(ctx context.Context, in *policy.Input) wire.Decision {
	if n := d.overdue.Load(); n >= maxOverdue {
		return deny(wire.ReasonPolicyTimeout, fmt.Sprintf("%d evaluations are still running past their deadline: retry later", n))
	}
	type result struct {
		dec wire.Decision
		err error
	}
	ch := make(chan result, 1)
	var state atomic.Int32 // running, then done or late: whoever moves it first says which
	const running, done, late = 0, 1, 2
	d.evals.Add(1)
	go func() {
		defer d.evals.Done()
		service.GrowStack() // parsing and walking a script is deep
		dec, err := d.cfg.Engine.Decide(in)
		if !state.CompareAndSwap(running, done) {
			d.overdue.Add(-1)
		}
		ch <- result{dec, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return deny(wire.ReasonPolicyError, "evaluation failed: "+r.err.Error())
		}
		return r.dec
	case <-ctx.Done():
		if state.CompareAndSwap(running, late) {
			d.overdue.Add(1)
		}
		return deny(wire.ReasonPolicyTimeout, "evaluation did not finish within "+d.cfg.Deadline.String())
	}
}

func (d *Daemon) approvals(ctx context.Context, req *service.Request) (any, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	l := wire.ApprovalList{Instance: d.svc.ID(), Pending: []wire.ApprovalAsk{}}
	for _, a := range d.pending {
		l.Pending = append(l.Pending, *a)
	}
	return l, nil
}

func deny(rule, msg string) wire.Decision {
	return wire.Decision{Verdict: wire.VerdictDeny, Reasons: []wire.Reason{{Rule: rule, Message: msg}}}
}

// withFirst sets the verdict and puts r before the existing reasons.
func withFirst(verdict string, r wire.Reason, d wire.Decision) wire.Decision {
	d.Verdict = verdict
	d.Reasons = append([]wire.Reason{r}, d.Reasons...)
	return d
}

func ruleIDs(rs []wire.Reason) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.Rule)
	}
	return out
}

// sentProfile is the resolved profile a check carries, whole or by the
// hash of one this policyd keeps (a whole one with the hash it claims is
// kept, and the reply says so); nil when it carries none.
func (d *Daemon) sentProfile(req *service.Request, cr *wire.CheckRequest) (*wire.Profile, error) {
	prof := cr.Profile.Resolved
	switch {
	case cr.ProfileHash != "":
		if prof = d.cache.get(cr.ProfileHash); prof == nil {
			return nil, wire.Errorf(wire.CodeNotFound, "profile %s is not kept by this policyd: send the resolved profile", cr.ProfileHash)
		}
	case prof != nil:
		if h := req.Header(wire.HeaderProfileHash); h != "" && d.cache.keep(h, prof) {
			req.SetReplyHeader(wire.HeaderProfileCached, h)
		}
	}
	return prof, nil
}

// ackToCaller is where req asked that an allow's record be acked
// (wire.HeaderRecordAck), or "": a well-formed token, under a caller's
// inbox, where alone the ack may go.
func ackToCaller(req *service.Request) string {
	token, reply := req.Header(wire.HeaderRecordAck), req.ReplySubject()
	if !wire.ValidToken(token) || !wire.CallerReply(reply) {
		return ""
	}
	return wire.RecordAckSubject(reply, token)
}
