package profiled_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/bus/bustest"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/profile"
	"github.com/moatsec/moat/pkg/profiled"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func start(t testing.TB) (*bustest.Stack, string) {
	t.Helper()
	s := bustest.Start(t)
	r, err := profile.NewResolver(profile.Options{MoatHome: s.Home.Dir, ProfilesFile: s.Home.ProfilesFile()})
	if err != nil {
		t.Fatal(err)
	}
	d, err := profiled.Start(s.Conn(t, home.RoleProfiled), profiled.Config{Resolver: r, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop() })
	ws := filepath.Join(filepath.Dir(s.Home.Dir), "ws")
	if err := os.MkdirAll(filepath.Join(ws, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	return s, ws
}

func TestResolveIsRecorded(t *testing.T) {
	s, ws := start(t)
	c := s.Client(t, home.RoleClient)
	p, err := c.Resolve(context.Background(), &wire.ResolveRequest{Profile: "workspace", Workspace: ws, SessionID: "sess-1", RequestID: "req-1"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "workspace-write" || !slices.Contains(p.FS.Write, ws) {
		t.Fatalf("profile = %+v", p)
	}
	// The event is in MOAT_AUDIT before the answer arrived.
	js, _ := jetstream.New(s.Conn(t, home.RoleAdmin))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, wire.AuditStream)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := st.GetLastMsgForSubject(ctx, wire.AuditSubject("profiled", ">"))
	if err != nil {
		t.Fatalf("no profiled event in the stream: %v", err)
	}
	var ev wire.AuditEvent
	if err := wire.Decode(wire.Msgpack, raw.Data, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Kind != "profile.resolved" || ev.RequestID != "req-1" || ev.SessionID != "sess-1" || ev.Profile != "workspace-write" ||
		ev.Source != "profiled" || ev.Seq != 1 || ev.Instance == "" || ev.ID == "" {
		t.Fatalf("event = %+v", ev)
	}
	if raw.Header.Get(wire.HeaderMsgID) != ev.ID || raw.Header.Get(wire.HeaderKind) != ev.Kind || raw.Header.Get(wire.HeaderRequestID) != "req-1" {
		t.Fatalf("event headers = %v", raw.Header)
	}
}

func TestBadInputOverTheBus(t *testing.T) {
	s, ws := start(t)
	other := t.TempDir()
	widen := filepath.Join(ws, "widen")
	os.MkdirAll(widen, 0o755)
	os.WriteFile(filepath.Join(widen, profile.DirFile), []byte("write = [\"/\"]\n"), 0o644)
	nc := s.Conn(t, home.RoleClient)
	tests := []struct {
		name string
		body string
		ct   string
		code string
		msg  string
	}{
		{"malformed msgpack", "\x82\xa7profile\xc1", wire.ContentMsgpack, "400", "malformed msgpack"},
		{"malformed json", `{"profile": "offline", "workspace": `, "", "400", "malformed json"},
		{"unknown field", `{"profile":"offline","workspace":"` + ws + `","yolo":true}`, "", "400", "unknown field"},
		{"unknown profile", `{"profile":"godmode","workspace":"` + ws + `"}`, "", "404", "valid profiles are"},
		{"relative workspace", `{"profile":"offline","workspace":"ws"}`, "", "400", "is relative"},
		{"missing workspace", `{"profile":"offline","workspace":"` + ws + `/nope"}`, "", "400", "does not exist"},
		{"no workspace", `{"profile":"offline"}`, "", "400", "workspace is required"},
		{"cwd outside", `{"profile":"offline","workspace":"` + ws + `","cwd":"` + other + `"}`, "", "400", "outside the workspace"},
		{"nul byte", `{"profile":"offline","workspace":"` + ws + `\u0000"}`, "", "400", "NUL byte"},
		{"too large", `{"profile":"` + strings.Repeat("a", wire.MaxRequestBytes) + `"}`, "", "413", "the limit is"},
		{"moat-profile widens", `{"profile":"workspace-write","workspace":"` + widen + `"}`, "", "403", "tries to widen"},
		{"trusted disabled", `{"profile":"trusted","workspace":"` + ws + `"}`, "", "403", "--allow-trusted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := nats.NewMsg(wire.SubjectResolve)
			m.Data = []byte(tt.body)
			if tt.ct != "" {
				m.Header.Set(wire.HeaderContentType, tt.ct)
			}
			resp, err := nc.RequestMsg(m, 3*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if got := resp.Header.Get(wire.HeaderErrorCode); got != tt.code {
				t.Fatalf("code = %q (%s), want %s", got, resp.Header.Get(wire.HeaderError), tt.code)
			}
			if msg := resp.Header.Get(wire.HeaderError); !strings.Contains(msg, tt.msg) {
				t.Fatalf("message %q lacks %q", msg, tt.msg)
			}
		})
	}
	// Still serving.
	if _, err := s.Client(t, home.RoleClient).Resolve(context.Background(), &wire.ResolveRequest{Workspace: ws}); err != nil {
		t.Fatalf("profiled broken after bad input: %v", err)
	}
}

// TestNoRecordNoAnswer: when the audit stream cannot take the event, the
// resolution is refused rather than answered unrecorded.
func TestNoRecordNoAnswer(t *testing.T) {
	s, ws := start(t)
	js, _ := jetstream.New(s.Conn(t, home.RoleAdmin))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, wire.AuditStream); err != nil {
		t.Fatal(err)
	}
	_, err := s.Client(t, home.RoleClient).Resolve(ctx, &wire.ResolveRequest{Workspace: ws})
	if wire.CodeOf(err) != wire.CodeUnavailable || !strings.Contains(err.Error(), "audit stream") {
		t.Fatalf("err = %v, want 503 naming the audit stream", err)
	}
}

func TestList(t *testing.T) {
	s, _ := start(t)
	l, err := s.Client(t, home.RoleClient).Profiles(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if l.Default != "offline" || len(l.Profiles) != 5 {
		t.Fatalf("list = %+v", l)
	}
}
