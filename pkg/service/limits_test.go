package service_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/service"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

// TestBadIDsAre400 sends request ids no service can use — 64 KiB long
// (issue 16: it answered 503), with a space, with a newline — in the header:
// each is a 400 naming the header, and the handler never runs.
func TestBadIDsAre400(t *testing.T) {
	ran := make(chan struct{}, 8)
	s, _ := start(t, 0, func(ctx context.Context, r *service.Request) (any, error) {
		ran <- struct{}{}
		return echo{}, nil
	})
	nc := s.Conn(t, home.RoleClient)
	for _, id := range []string{strings.Repeat("a", 64<<10), "a b", "a\tb"} {
		m := nats.NewMsg(wire.SubjectResolve)
		m.Data = []byte(`{"profile":"x"}`)
		m.Header.Set(wire.HeaderSessionID, id)
		resp, err := nc.RequestMsg(m, 5*time.Second)
		if err != nil {
			t.Fatalf("id %.20q: %v", id, err)
		}
		if code, msg := resp.Header.Get(wire.HeaderErrorCode), resp.Header.Get(wire.HeaderError); code != "400" || !strings.Contains(msg, wire.HeaderSessionID) {
			t.Errorf("id %.20q: %s %s, want 400 naming the header", id, code, msg)
		}
	}
	select {
	case <-ran:
		t.Fatal("the handler ran with a bad id")
	default:
	}
}

// TestRepliesPastTheRequestLimit answers 600 KB, more than a request may
// carry but well within the bus: the client reads it (issue 16: a reply over
// 512 KiB was "garbled"). An answer over the bus's own limit is a clear
// 500 at once, not a silence until the caller's deadline.
func TestRepliesPastTheRequestLimit(t *testing.T) {
	s, _ := start(t, 0, func(ctx context.Context, r *service.Request) (any, error) {
		var in echo
		if err := r.Decode(&in); err != nil {
			return nil, err
		}
		n := 600 << 10
		if in.Profile == "huge" {
			n = 9 << 20
		}
		return echo{Profile: strings.Repeat("x", n)}, nil
	})
	c := s.Client(t, home.RoleClient)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out echo
	if err := c.Call(ctx, wire.SubjectResolve, "", "", echo{Profile: "big"}, &out); err != nil || len(out.Profile) != 600<<10 {
		t.Fatalf("600 KB answer: %d bytes, err %v", len(out.Profile), err)
	}
	err := c.Call(ctx, wire.SubjectResolve, "", "", echo{Profile: "huge"}, &out)
	if wire.CodeOf(err) != wire.CodeInternal || !strings.Contains(err.Error(), "over the bus's limit") {
		t.Fatalf("answer over the bus limit: %v, want a 500 saying so", err)
	}
}
