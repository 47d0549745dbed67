package client

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// Status is what the bus says about the stack.
type Status struct {
	Bus      string           `json:"bus"`
	Server   string           `json:"server_version"`
	Services []ServiceStatus  `json:"services"`
	Missing  []string         `json:"missing"`
	Audit    *AuditStreamInfo `json:"audit_stream,omitempty"`
	// Servers are the busd servers that answered moat.bus.servers: the
	// cluster, its routes, leaves and streams' copies.
	Servers []wire.BusServer `json:"servers"`
}

// ServiceStatus groups the instances of one service.
type ServiceStatus struct {
	Name      string   `json:"name"`
	Instances int      `json:"instances"`
	Versions  []string `json:"versions"`
	IDs       []string `json:"ids"`
}

// AuditStreamInfo is the state of MOAT_AUDIT.
type AuditStreamInfo struct {
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
	Error    string `json:"error,omitempty"`
}

// Ping collects $SRV.PING answers from every instance for wait.
func (c *Client) Ping(ctx context.Context, wait time.Duration) ([]wire.PingReply, error) {
	var out []wire.PingReply
	err := c.gather(ctx, "$SRV.PING", wait, func(data []byte) {
		var p wire.PingReply
		if json.Unmarshal(data, &p) == nil && p.Name != "" {
			out = append(out, p)
		}
	})
	return out, err
}

// BusServers collects every busd's answer on moat.bus.servers for wait,
// sorted by name.
func (c *Client) BusServers(ctx context.Context, wait time.Duration) ([]wire.BusServer, error) {
	var out []wire.BusServer
	err := c.gather(ctx, wire.SubjectBusServers, wait, func(data []byte) {
		var b wire.BusServer
		if json.Unmarshal(data, &b) == nil && b.Name != "" {
			out = append(out, b)
		}
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// gather sends an empty request on subject and hands each answer that
// comes within wait to add, in an open inbox: worker hosts' servers and
// services may answer there (wire.OpenInbox).
func (c *Client) gather(ctx context.Context, subject string, wait time.Duration, add func([]byte)) error {
	inbox := wire.OpenInbox(c.nc.NewInbox())
	ch := make(chan *nats.Msg, 256)
	sub, err := c.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	if err := c.nc.PublishRequest(subject, inbox, nil); err != nil {
		return err
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case m := <-ch:
			add(m.Data)
		case <-timer.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Status pings every service and reads the audit stream's state.
func (c *Client) Status(ctx context.Context, wait time.Duration) (*Status, error) {
	var (
		servers []wire.BusServer
		serr    error
		wg      sync.WaitGroup
	)
	wg.Go(func() { servers, serr = c.BusServers(ctx, wait) })
	pings, err := c.Ping(ctx, wait)
	wg.Wait()
	if err == nil {
		err = serr
	}
	if err != nil {
		return nil, err
	}
	st := &Status{Bus: c.nc.ConnectedUrlRedacted(), Server: c.nc.ConnectedServerVersion(), Servers: servers}
	byName := map[string]*ServiceStatus{}
	for _, p := range pings {
		s := byName[p.Name]
		if s == nil {
			s = &ServiceStatus{Name: p.Name}
			byName[p.Name] = s
		}
		s.Instances++
		s.IDs = append(s.IDs, p.ID)
		if !slices.Contains(s.Versions, p.Version) {
			s.Versions = append(s.Versions, p.Version)
		}
	}
	for _, name := range wire.Services {
		if byName[name] == nil {
			st.Missing = append(st.Missing, name)
		}
	}
	for _, s := range byName {
		sort.Strings(s.IDs)
		st.Services = append(st.Services, *s)
	}
	sort.Slice(st.Services, func(i, j int) bool { return order(st.Services[i].Name) < order(st.Services[j].Name) })
	st.Audit = c.auditStream(ctx)
	return st, nil
}

func (c *Client) auditStream(ctx context.Context) *AuditStreamInfo {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	m, err := c.nc.RequestWithContext(ctx, "$JS.API.STREAM.INFO."+wire.AuditStream, nil)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return &AuditStreamInfo{Error: "jetstream is not answering"}
		}
		return &AuditStreamInfo{Error: err.Error()}
	}
	var info struct {
		State struct {
			Msgs  uint64 `json:"messages"`
			Bytes uint64 `json:"bytes"`
		} `json:"state"`
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &info); err != nil {
		return &AuditStreamInfo{Error: "unreadable stream info"}
	}
	if info.Error != nil {
		return &AuditStreamInfo{Error: info.Error.Description}
	}
	return &AuditStreamInfo{Messages: info.State.Msgs, Bytes: info.State.Bytes}
}

func order(name string) int {
	for i, s := range wire.Services {
		if s == name {
			return i
		}
	}
	return len(wire.Services)
}
