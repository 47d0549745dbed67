package client

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sort"
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
	inbox := c.nc.NewInbox()
	ch := make(chan *nats.Msg, 256)
	sub, err := c.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := c.nc.PublishRequest("$SRV.PING", inbox, nil); err != nil {
		return nil, err
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	var out []wire.PingReply
	for {
		select {
		case m := <-ch:
			var p wire.PingReply
			if json.Unmarshal(m.Data, &p) == nil && p.Name != "" {
				out = append(out, p)
			}
		case <-timer.C:
			return out, nil
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
}

// Status pings every service and reads the audit stream's state.
func (c *Client) Status(ctx context.Context, wait time.Duration) (*Status, error) {
	pings, err := c.Ping(ctx, wait)
	if err != nil {
		return nil, err
	}
	st := &Status{Bus: c.nc.ConnectedUrlRedacted(), Server: c.nc.ConnectedServerVersion()}
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
