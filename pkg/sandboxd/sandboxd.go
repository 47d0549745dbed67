// Package sandboxd is the sandboxd daemon: the micro service behind
// moat.sandbox.run that orchestrates a run — resolve the profile through
// profiled, decide through policyd, record the decision, run the command
// under [sandbox.Run], record how it ended — and answers with the result.
//
// Invariants, each failing closed:
//   - no profile from profiled: nothing runs (503);
//   - no decision in time: a deny (pkg/client's Check never fails open);
//   - the decision is acked by JetStream before the command starts: no ack,
//     nothing runs (503) — nothing runs without a durable record;
//   - an allowed run is claimed (once.go) before its decision is recorded,
//     and the claim is marked done once its end (run.exit or run.failed) is
//     on record: a run whose sandboxd is lost is closed by another with a
//     run.failed (lost.go), so no allowed run stays open in the audit;
//   - at most MaxRuns commands at once; an allowed run past it waits in a
//     bounded queue, fair across sessions (queue.go), until a slot frees or
//     the caller's deadline (HeaderDeadline) passes (408, nothing ran); a
//     503 only when the queue itself is full; a run takes its slot once
//     allowed: a decision, and a person asked for one, hold none (nor one
//     of the service's request slots once a person is asked);
//   - while a run goes on, the caller hears a heartbeat every second, so a
//     sandboxd that dies is noticed, and its children die with it; the caller
//     answers each, so a caller that cancels, dies or stops answering has its
//     run killed (the whole tree, through the sandbox's cgroup) and recorded
//     with cancelled: true (see caller.go and pkg/wire/run.go);
//   - output never travels in one message over the bus's limit: it goes to
//     the caller's own reply subject in chunks, private to it.
package sandboxd

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moatsec/moat/pkg/audit"
	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/sandbox"
	"github.com/moatsec/moat/pkg/service"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Version is sandboxd's service version.
const Version = "0.1.0"

// Config configures the daemon.
type Config struct {
	MaxRuns  int // concurrent commands; default 4 per CPU
	MaxQueue int // allowed runs waiting for a slot; default 2 × MaxRuns
	// QueueWait bounds a queued run's wait when its caller sent no
	// deadline (HeaderDeadline); default DefaultQueueWait.
	QueueWait time.Duration
	Sanitizer *audit.Sanitizer // sanitizes events before they leave the process
	Logger    *slog.Logger
	Net       sandbox.NetHooks // the runs' egress resolver and dialer (tests); OnConn is sandboxd's own
	// Drain is how long Stop lets runs go on before it cancels them (their
	// end is recorded and answered either way); default DefaultDrain.
	Drain time.Duration
	// Beat is how often this sandboxd rewrites its liveness record, and
	// LostAfter how long another's may go unwritten before that one is
	// judged lost and its runs in flight closed (lost.go); defaults
	// DefaultBeat and DefaultLostAfter.
	Beat, LostAfter time.Duration
}

// Daemon serves runs on the bus.
type Daemon struct {
	cfg   Config
	nc    *nats.Conn
	svc   *service.Service
	audit *audit.Publisher
	js    jetstream.JetStream
	live  *liveness
	held  atomic.Int64 // claims held and not yet marked done
	// marking joins the claims being marked done after their run's end is
	// on record (end): Stop waits for them before the liveness record goes.
	marking sync.WaitGroup
	bus     *client.Client
	runs    *runQueue
	log     *slog.Logger
	// callers routes the run protocol's control messages (caller.go).
	callers *callers
	// quit, cancelled by Stop once the drain is over, cancels every run.
	quit   context.Context
	doQuit context.CancelCauseFunc
}

// Start registers the service on nc.
func Start(nc *nats.Conn, cfg Config) (*Daemon, error) {
	if cfg.MaxRuns <= 0 {
		cfg.MaxRuns = 4 * runtime.NumCPU()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Drain == 0 {
		cfg.Drain = DefaultDrain
	}
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = 2 * cfg.MaxRuns
	}
	if cfg.QueueWait <= 0 {
		cfg.QueueWait = DefaultQueueWait
	}
	if cfg.Beat <= 0 {
		cfg.Beat = DefaultBeat
	}
	if cfg.LostAfter <= 0 {
		cfg.LostAfter = DefaultLostAfter
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	d := &Daemon{cfg: cfg, nc: nc, log: cfg.Logger, runs: newRunQueue(cfg.MaxRuns, cfg.MaxQueue), bus: client.FromConn(nc, 5*time.Second),
		callers: &callers{nc: nc}, js: js}
	d.quit, d.doQuit = context.WithCancelCause(context.Background())
	svc, err := service.New(nc, service.Config{
		Name: wire.ServiceSandboxd, Version: Version, Logger: cfg.Logger, MaxInflight: inflight(cfg),
		Description: "runs approved commands under kernel isolation",
	})
	if err != nil {
		return nil, err
	}
	d.svc = svc
	d.live = newLiveness(d) // before the first run can reach it
	if d.audit, err = audit.NewPublisher(nc, wire.ServiceSandboxd, svc.ID()); err == nil {
		d.audit.SetLogger(cfg.Logger)
		d.audit.SetSanitizer(cfg.Sanitizer)
		err = svc.Handle("run", wire.SubjectRun, d.run)
	}
	if err != nil {
		svc.Stop()
		return nil, err
	}
	d.live.start()
	return d, nil
}

// ID is this instance's service id.
func (d *Daemon) ID() string { return d.svc.ID() }

func (d *Daemon) run(ctx context.Context, req *service.Request) (any, error) {
	var rr wire.RunRequest
	if err := req.DecodeLimit(&rr, wire.MaxRunRequestBytes); err != nil {
		return nil, err
	}
	req.FillIDs(&rr.RequestID, &rr.SessionID)
	if rr.RequestID == "" {
		rr.RequestID = wire.NewID()
	}
	deadline, err := d.queueDeadline(req)
	if err != nil {
		return nil, err
	}
	ctx, leave := d.stopping(ctx)
	defer leave()
	// A run takes its slot once it is allowed: deciding (and a person's
	// answer) holds none. Queue full already: refused before anything is decided.
	slot := &runSlot{q: d.runs}
	if full, n := d.runs.full(); full {
		return nil, d.queueFull(n)
	}
	defer slot.release()
	caller, ctx, err := d.callers.start(ctx, req, rr.RequestID)
	if err != nil {
		return nil, wire.Errorf(wire.CodeUnavailable, "%v: nothing ran", err)
	}
	defer caller.close()

	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	prof, err := d.bus.Resolve(rctx, &wire.ResolveRequest{Profile: rr.Profile, Workspace: rr.Workspace, Cwd: rr.Cwd,
		SessionID: rr.SessionID, RequestID: rr.RequestID})
	cancel()
	if err != nil {
		if wire.CodeOf(err) >= 500 || wire.CodeOf(err) == wire.CodeTimeout {
			return nil, wire.Errorf(wire.CodeUnavailable, "cannot resolve the profile (%v): nothing ran", err)
		}
		return nil, err
	}
	approval := rr.Approval
	if approval == "" {
		approval = wire.ApprovalOnRequest
	}
	// While a person is asked, the caller hears who is asked and until when.
	wait := &approvalWait{caller: caller, req: req}
	dec := d.bus.CheckResolved(ctx, &wire.CheckRequest{RequestID: rr.RequestID, SessionID: rr.SessionID, Argv: rr.Argv,
		Cwd: prof.Cwd, Workspace: prof.Workspace, Profile: wire.RefResolved(prof), Approval: approval, Env: reaching(rr.Env)}, wait.tell)
	// An allowed run is claimed before its decision is recorded (once.go):
	// a request id runs once, and an allow on record always has a claim
	// that gets closed, by this sandboxd or, if it is lost, by another. The
	// claim is taken only once allowed: a claim stored while policyd decides
	// would be closed with a run.failed if this sandboxd were lost, for a
	// run nobody allowed, and every denied request would write one.
	var cl *claim
	if dec.Verdict == wire.VerdictAllow {
		if cl, err = d.claimAt(context.WithoutCancel(ctx), &rr, prof.Name, prof.Cwd, wire.NewID()); err != nil {
			return nil, err
		}
	}
	ev := &wire.AuditEvent{Kind: wire.KindRunDecision, SessionID: rr.SessionID, RequestID: rr.RequestID, Profile: prof.Name,
		Argv: rr.Argv, Cwd: prof.Cwd, Verdict: dec.Verdict, Reasons: dec.Reasons,
		Detail: map[string]any{"workspace": prof.Workspace, "decided_by": dec.DecidedBy}}
	if err := d.audit.Publish(context.WithoutCancel(ctx), ev); err != nil {
		// The decision may be on record all the same (its ack lost in a
		// fail-over): a run.failed closes it, so no allow on record stays
		// open; only then may the id be sent again. Should that fail too,
		// the claim stays with this sandboxd until it stops or is lost,
		// and is closed then.
		if cl != nil {
			d.notRun(cl, &rr, prof, dec.Verdict, "nothing ran: the decision could not be confirmed on record")
		}
		return nil, wire.Errorf(wire.CodeUnavailable, "the decision could not be recorded (%v): nothing runs without a durable record", err)
	}
	if dec.Verdict != wire.VerdictAllow {
		return &wire.RunResult{RequestID: rr.RequestID, Decision: &dec, ExitCode: wire.ExitDenied, Refusal: wire.RefusalOf(rr.Argv, &dec)}, nil
	}
	queued := time.Now()
	if err := d.waitSlot(ctx, slot, rr.SessionID, deadline); err != nil {
		// Nothing ran: once that is on record, the id may be sent again.
		d.notRun(cl, &rr, prof, dec.Verdict, err.Error())
		return nil, err
	}
	// A cancel from here on still ends with a run.exit (cancelled): the
	// sandbox stops what it started.
	queueUS := time.Since(queued).Microseconds()
	spec := &sandbox.Spec{Argv: rr.Argv, Profile: prof, Dir: prof.Cwd, Env: rr.Env, Stdin: rr.Stdin,
		Timeout: time.Duration(rr.TimeoutMS) * time.Millisecond, Net: d.netHooks(&rr, prof), NetRules: dec.Net,
		Signals: caller.starting()}
	live := rr.Stream && caller.protocol
	if live {
		spec.Stdout, spec.Stderr = caller.output(wire.StreamStdout), caller.output(wire.StreamStderr)
	}
	res, err := sandbox.Run(ctx, spec)
	if err != nil {
		d.end(cl, &wire.AuditEvent{Kind: wire.KindRunFailed, SessionID: rr.SessionID, RequestID: rr.RequestID, Profile: prof.Name,
			Argv: rr.Argv, Cwd: prof.Cwd, Verdict: dec.Verdict, Detail: map[string]any{"error": err.Error()}}, "run.failed: "+err.Error())
		return nil, wire.Errorf(wire.CodeInternal, "%v", err)
	}
	out := &wire.RunResult{RequestID: rr.RequestID, Decision: &dec, QueueUS: queueUS, ExitCode: res.ExitCode, Signal: res.Signal,
		TimedOut: res.TimedOut, Stdout: res.Stdout, Stderr: res.Stderr, StdoutTruncated: res.StdoutTruncated,
		StderrTruncated: res.StderrTruncated, DurationUS: res.Duration.Microseconds(), Usage: res.Usage, Isolation: res.Isolation,
		Refusal: limitRefusal(res, spec), Quarantined: res.Quarantined, NetDenied: netDenied(res.NetDenied),
		SyscallsDenied: res.Syscalls, PathsDenied: res.Paths}
	if len(res.Quarantined) > 0 {
		d.record(&wire.AuditEvent{Kind: wire.KindRunQuarantine, SessionID: rr.SessionID, RequestID: rr.RequestID, Profile: prof.Name,
			Argv: rr.Argv, Cwd: prof.Cwd, Verdict: dec.Verdict, Detail: map[string]any{"quarantined": res.Quarantined}})
	}
	if cause := context.Cause(ctx); cause != nil {
		out.Cancelled, out.CancelReason = true, cause.Error()
	} else if sig := caller.signaledBy(); sig != "" {
		// Stopped by its caller with a signal the command got first: its
		// own status says how it took it.
		out.Cancelled, out.CancelReason = true, "the caller sent "+sig
	}
	code := res.ExitCode
	d.end(cl, &wire.AuditEvent{Kind: wire.KindRunExit, SessionID: rr.SessionID, RequestID: rr.RequestID, Profile: prof.Name,
		Argv: rr.Argv, Cwd: prof.Cwd, Verdict: dec.Verdict, ExitCode: &code, DurationUS: out.DurationUS,
		Detail: map[string]any{"signal": res.Signal, "timed_out": res.TimedOut, "oom_killed": res.OOMKilled,
			"cpu_exceeded": res.CPUExceeded, "pids_limited": res.PidsLimited, "max_rss_bytes": res.Usage.MaxRSSBytes, "user_us": res.Usage.UserUS,
			"sys_us": res.Usage.SysUS, "stdout_bytes": len(res.Stdout), "stderr_bytes": len(res.Stderr),
			"stdout_truncated": res.StdoutTruncated, "stderr_truncated": res.StderrTruncated, "isolation": res.Isolation,
			"cancelled": out.Cancelled, "cancel_reason": out.CancelReason, "syscalls_denied": res.Syscalls,
			"paths_denied": res.Paths}}, outcome(out))
	caller.finish(req, out, live)
	return out, nil
}

// limitRefusal says which limit stopped a run: the timeout and the CPU
// budget (sandboxd killed it, or the kernel's SIGXCPU at one process's
// RLIMIT_CPU), the OOM killer, or the pids limit (a fork refused) when the
// command then failed; else, when it failed after the seccomp filter
// refused it system calls, which; else the paths its error output named
// that the filesystem rules refuse.
func limitRefusal(res *sandbox.Result, spec *sandbox.Spec) *wire.Refusal {
	l := spec.Profile.Limits
	failed := res.ExitCode != 0 || res.Signal != ""
	switch {
	case res.TimedOut:
		l.TimeoutMS = spec.EffectiveTimeout().Milliseconds()
		return wire.LimitRefusal(wire.LayerTimeout, l)
	case res.CPUExceeded || res.Signal == "SIGXCPU": // the cgroup's budget, or one process's RLIMIT_CPU
		return wire.LimitRefusal(wire.LayerCPU, l)
	case res.OOMKilled && failed:
		return wire.LimitRefusal(wire.LayerMemory, l)
	case res.PidsLimited && failed:
		return wire.LimitRefusal(wire.LayerPids, l)
	case len(res.Syscalls) > 0 && failed:
		return wire.SeccompRefusal(spec.Profile.Name, res.Syscalls)
	case len(res.Paths) > 0 && failed:
		return wire.FSRefusal(spec.Profile.Name, res.Paths)
	}
	return nil
}

// notRun closes a claimed run that did not start with a run.failed saying
// why, then releases its claim so the id may be sent again (ends.go: until
// that record is acked the claim stays held, and it is sent again).
func (d *Daemon) notRun(cl *claim, rr *wire.RunRequest, prof *wire.Profile, verdict, why string) {
	d.finish(cl, &wire.AuditEvent{Kind: wire.KindRunFailed, SessionID: rr.SessionID, RequestID: rr.RequestID, Profile: prof.Name,
		Argv: rr.Argv, Cwd: prof.Cwd, Verdict: verdict, Detail: map[string]any{"error": why}}, why, true)
}

// end records how a claimed run ended, then marks its claim done with
// outcome (ends.go): the end is stamped and fixed in the claim first, so
// that a sandboxd lost before marking the claim done leaves that same
// record to publish, never a run.failed beside its exit (lost.go); an end
// that could not be recorded is sent again until it is.
func (d *Daemon) end(cl *claim, ev *wire.AuditEvent, outcome string) {
	d.finish(cl, ev, outcome, false)
}

// outcome says in a few words how a run ended, for its claim.
func outcome(r *wire.RunResult) string {
	s := fmt.Sprintf("exit %d", r.ExitCode)
	if r.Signal != "" {
		s += ", signal " + r.Signal
	}
	if r.TimedOut {
		s += ", timed out"
	}
	if r.Cancelled {
		s += ", cancelled: " + r.CancelReason
	}
	return s
}

// record publishes an event about something that already happened and
// waits for the ack; a failure is logged, loudly, since it cannot be undone.
func (d *Daemon) record(ev *wire.AuditEvent) error {
	err := d.audit.Publish(context.Background(), ev)
	if err != nil {
		d.log.Error("AUDIT GAP: event not recorded", "kind", ev.Kind, "request_id", ev.RequestID, "err", err)
	}
	return err
}

// reaching are the variables of a run's request that reach its command
// (sandbox.Environ keeps the same): policyd judges them with its argv.
// Credentials are left out; they never reach a command, nor policyd.
func reaching(env map[string]string) map[string]string {
	var out map[string]string
	for k, v := range env {
		if wire.ValidVarName(k) && !wire.SecretVar(k) && !strings.ContainsRune(v, 0) {
			if out == nil {
				out = make(map[string]string, len(env))
			}
			out[k] = v
		}
	}
	return out
}
