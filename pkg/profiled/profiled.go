// Package profiled is the profiled daemon: the micro service that answers
// moat.profile.resolve and moat.profile.list with a [profile.Resolver], and
// records every resolution in the audit stream before it answers. A
// resolution is made once: a caller that lost its answer when the bus
// restarted gets the same answer again (moat.profile.resume,
// service.HandleKept).
package profiled

import (
	"context"
	"log/slog"

	"github.com/moatsec/moat/pkg/audit"
	"github.com/moatsec/moat/pkg/profile"
	"github.com/moatsec/moat/pkg/service"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// Version is profiled's service version.
const Version = "0.1.0"

// Daemon serves profile resolution on the bus.
type Daemon struct {
	resolver *profile.Resolver
	audit    *audit.Publisher
	svc      *service.Service
	log      *slog.Logger
}

// Config is what profiled serves with.
type Config struct {
	Resolver  *profile.Resolver
	Sanitizer *audit.Sanitizer // when set, sanitizes every event before it leaves the process
	Logger    *slog.Logger     // default slog.Default()
}

// Start registers the service on nc.
func Start(nc *nats.Conn, cfg Config) (*Daemon, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	d := &Daemon{resolver: cfg.Resolver, log: log}
	svc, err := service.New(nc, service.Config{
		Name: wire.ServiceProfiled, Version: Version, Logger: log,
		Description: "resolves a profile name and workspace into a concrete policy",
	})
	if err != nil {
		return nil, err
	}
	d.svc = svc
	if d.audit, err = audit.NewPublisher(nc, wire.ServiceProfiled, svc.ID()); err != nil {
		svc.Stop()
		return nil, err
	}
	d.audit.SetSanitizer(cfg.Sanitizer)
	if err := svc.Resumable(wire.SubjectResolveResume); err != nil {
		svc.Stop()
		return nil, err
	}
	// A resolution is answered once and recorded once: a caller that lost
	// the answer with the bus gets the same one again (service.Resumable).
	if err := svc.HandleKept("resolve", wire.SubjectResolve, d.resolve); err != nil {
		svc.Stop()
		return nil, err
	}
	if err := svc.Handle("list", wire.SubjectProfileList, d.list); err != nil {
		svc.Stop()
		return nil, err
	}
	return d, nil
}

// ID is this instance's service id.
func (d *Daemon) ID() string { return d.svc.ID() }

// Stop stops taking requests and waits for those in flight.
func (d *Daemon) Stop() error { return d.svc.Shutdown(context.Background()) }

func (d *Daemon) resolve(ctx context.Context, req *service.Request) (any, error) {
	var rr wire.ResolveRequest
	if err := req.Decode(&rr); err != nil {
		return nil, err
	}
	req.FillIDs(&rr.RequestID, &rr.SessionID)
	p, err := d.resolver.Resolve(&rr)
	ev := &wire.AuditEvent{Kind: wire.KindProfileResolved, SessionID: rr.SessionID, RequestID: rr.RequestID,
		Profile: rr.Profile, Cwd: rr.Cwd, Detail: map[string]any{"workspace": rr.Workspace}}
	if err != nil {
		ev.Kind = wire.KindProfileRefused
		ev.Detail["error"] = err.Error()
	} else {
		ev.Profile = p.Name
		ev.Detail["net"] = p.Net.Mode
		ev.Detail["write"] = p.FS.Write
		if len(p.NarrowedBy) > 0 {
			ev.Detail["narrowed_by"] = p.NarrowedBy
		}
	}
	// The answer waits for the record: a resolution that is not on record did not happen.
	if aerr := d.audit.Publish(ctx, ev); aerr != nil {
		return nil, aerr
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (d *Daemon) list(ctx context.Context, req *service.Request) (any, error) {
	return d.resolver.List(), nil
}
