package service_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/service"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

type echo struct {
	Profile string `json:"profile"`
}

func start(t *testing.T, max int, h service.Handler) (*bustest.Stack, *service.Service) {
	t.Helper()
	s := bustest.Start(t)
	svc, err := service.New(s.Conn(t, home.RoleProfiled), service.Config{Name: "profiled", Version: "0.0.1", MaxInflight: max})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Handle("resolve", wire.SubjectResolve, h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Stop() })
	return s, svc
}

// TestConcurrent proves requests are answered concurrently: every handler
// waits until all of them have started, which never happens one at a time.
func TestConcurrent(t *testing.T) {
	const n = 16
	var arrived sync.WaitGroup
	arrived.Add(n)
	s, _ := start(t, 0, func(ctx context.Context, r *service.Request) (any, error) {
		arrived.Done()
		arrived.Wait()
		return echo{Profile: "ok"}, nil
	})
	c := s.Client(t, home.RoleClient)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			var out echo
			errs <- c.Call(ctx, wire.SubjectResolve, "", "", echo{}, &out)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a request was not answered while others waited: %v", err)
		}
	}
}

func TestBusyIs503(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	s, _ := start(t, 1, func(ctx context.Context, r *service.Request) (any, error) {
		started <- struct{}{}
		<-release
		return echo{}, nil
	})
	defer close(release)
	c := s.Client(t, home.RoleClient)
	go c.Call(context.Background(), wire.SubjectResolve, "", "", echo{}, &echo{})
	<-started
	err := c.Call(context.Background(), wire.SubjectResolve, "", "", echo{}, &echo{})
	if wire.CodeOf(err) != wire.CodeUnavailable || !strings.Contains(err.Error(), "another copy") {
		t.Fatalf("err = %v, want 503 busy", err)
	}
}

func TestErrorsAndFormats(t *testing.T) {
	s, _ := start(t, 0, func(ctx context.Context, r *service.Request) (any, error) {
		var in echo
		if err := r.Decode(&in); err != nil {
			return nil, err
		}
		switch in.Profile {
		case "panic":
			panic("boom")
		case "plain":
			return nil, errors.New("disk on fire")
		case "404":
			return nil, wire.Errorf(wire.CodeNotFound, "no such thing")
		}
		return echo{Profile: in.Profile + "!" + r.RequestID}, nil
	})
	nc := s.Conn(t, home.RoleClient)
	req := func(body string, hdr map[string]string) *nats.Msg {
		m := nats.NewMsg(wire.SubjectResolve)
		m.Data = []byte(body)
		for k, v := range hdr {
			m.Header.Set(k, v)
		}
		resp, err := nc.RequestMsg(m, 2*time.Second)
		if err != nil {
			t.Fatalf("request %q: %v", body, err)
		}
		return resp
	}
	tests := []struct {
		body, code, msg, reply string
	}{
		{`{"profile":"x"}`, "", "", `{"profile":"x!r-1"}`},
		{`{"profile":"panic"}`, "500", "internal error", ""},
		{`{"profile":"plain"}`, "500", "disk on fire", ""},
		{`{"profile":"404"}`, "404", "no such thing", ""},
		{`{"profile":`, "400", "malformed json", ""},
		{"\xc1", "400", "malformed msgpack", ""},
		{`{"profile":"` + strings.Repeat("x", wire.MaxRequestBytes) + `"}`, "413", "the limit is", ""},
	}
	for _, tt := range tests {
		resp := req(tt.body, map[string]string{wire.HeaderRequestID: "r-1"})
		if got := resp.Header.Get(wire.HeaderErrorCode); got != tt.code {
			t.Errorf("%.30q: code %q, want %q (%s)", tt.body, got, tt.code, resp.Header.Get(wire.HeaderError))
		}
		if !strings.Contains(resp.Header.Get(wire.HeaderError), tt.msg) {
			t.Errorf("%.30q: message %q lacks %q", tt.body, resp.Header.Get(wire.HeaderError), tt.msg)
		}
		if tt.reply != "" && string(resp.Data) != tt.reply {
			t.Errorf("%.30q: reply %s, want %s", tt.body, resp.Data, tt.reply)
		}
		if resp.Header.Get(wire.HeaderRequestID) != "r-1" {
			t.Errorf("%.30q: request id not echoed", tt.body)
		}
		if tt.code != "" && tt.body[0] == '{' && !strings.Contains(string(resp.Data), `"error":{"code":`+tt.code) {
			t.Errorf("%.30q: error body %s", tt.body, resp.Data)
		}
	}
	// The service stays up after all of that.
	if r := req(`{"profile":"still"}`, nil); r.Header.Get(wire.HeaderErrorCode) != "" {
		t.Fatalf("service broken after bad input: %v", r.Header)
	}
}
