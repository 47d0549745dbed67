package wire

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

func sampleMessages() []any {
	code := 3
	return []any{
		&ResolveRequest{Profile: "workspace-write", Workspace: "/w", Cwd: "/w/src", SessionID: "s1", RequestID: "r1"},
		&Profile{Name: "offline", Base: "offline", Workspace: "/w", Cwd: "/w",
			FS:     FS{Write: []string{"/w"}, ReadDeny: []string{"/home/a/.ssh"}, WriteDeny: []string{"/w/.git/hooks"}},
			Net:    Net{Mode: NetAllowlist, Allow: []string{"proxy.golang.org:443"}},
			Limits: Limits{TimeoutMS: 1000, MemoryBytes: 1 << 30, Pids: 64, CPUMS: 5, OutputBytes: 9, FileBytes: 10},
			Env:    Env{Pass: []string{"PATH"}, Set: map[string]string{"A": "b"}},
			Source: "builtin", NarrowedBy: []string{"/w/.moat-profile"}},
		&ProfileList{Default: "offline", Profiles: []ProfileInfo{{Name: "offline", Aliases: []string{"read-only"}, Enabled: true}}},
		&Decision{Verdict: VerdictDeny, Reasons: []Reason{{Rule: "net.client", Message: "no network"}}, DecidedBy: "policyd-1", ElapsedUS: 12},
		&RunRequest{RequestID: "r", Profile: "offline", Workspace: "/w", Argv: []string{"ls", "-la"}, Env: map[string]string{"X": "1"}, Stdin: []byte{0, 1, 2}, TimeoutMS: 5, Stream: true},
		&RunResult{RequestID: "r", Decision: &Decision{Verdict: VerdictAllow, Reasons: []Reason{}}, ExitCode: 1, Signal: "SIGKILL", TimedOut: true,
			Stdout: []byte("out"), Stderr: []byte("err"), StdoutTruncated: true, DurationUS: 7, Usage: Usage{MaxRSSBytes: 1, UserUS: 2, SysUS: 3}, Isolation: []string{"landlock"}},
		&CheckRequest{RequestID: "r", Argv: []string{"ls"}, Cwd: "/w", Workspace: "/w", Profile: RefName("offline"), Approval: ApprovalOnRequest, ApprovalTimeoutMS: 5},
		&CheckRequest{Argv: []string{"ls"}, Profile: RefResolved(&Profile{Name: "offline", FS: FS{Write: []string{}, ReadDeny: []string{"/x"}, WriteDeny: []string{}}, Env: Env{Pass: []string{}}})},
		&ApprovalAsk{ID: "a", Argv: []string{"x"}, Reasons: []Reason{{Rule: "r", Message: "m"}}, AskedAt: time.Unix(1, 0).UTC(), ExpiresAt: time.Unix(2, 0).UTC()},
		&ApprovalAnswer{ID: "a", Verdict: VerdictAllow, By: "alice", Reason: "ok"},
		&AuditEvent{ID: "0190", TS: time.Unix(1700000000, 123456789).UTC(), Source: "profiled", Seq: 9, Kind: "profile.resolved",
			Argv: []string{"a"}, ExitCode: &code, Reasons: []Reason{{Rule: "x", Message: "y", Source: "f:1"}}},
	}
}

// Encode copies a struct behind a pointer once (fewer allocations): the
// bytes are those of encoding the pointer itself.
func TestEncodeByValueSameBytes(t *testing.T) {
	for _, msg := range sampleMessages() {
		var want bytes.Buffer
		enc := msgpack.NewEncoder(&want)
		enc.SetCustomStructTag("json")
		if err := enc.Encode(msg); err != nil {
			t.Fatal(err)
		}
		got, err := Encode(Msgpack, msg)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Errorf("%T: %x, the pointer encodes to %x", msg, got, want.Bytes())
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, f := range []Format{Msgpack, JSON} {
		for _, msg := range sampleMessages() {
			name := f.String() + "/" + reflect.TypeOf(msg).Elem().Name()
			t.Run(name, func(t *testing.T) {
				body, err := Encode(f, msg)
				if err != nil {
					t.Fatalf("encode: %v", err)
				}
				if got := DetectFormat("", body); got != f {
					t.Fatalf("DetectFormat = %v, want %v", got, f)
				}
				got := reflect.New(reflect.TypeOf(msg).Elem()).Interface()
				if err := Decode(f, body, got); err != nil {
					t.Fatalf("decode: %v", err)
				}
				switch v := got.(type) { // msgpack decodes times in the local zone
				case *AuditEvent:
					v.TS = v.TS.UTC()
				case *ApprovalAsk:
					v.AskedAt, v.ExpiresAt = v.AskedAt.UTC(), v.ExpiresAt.UTC()
				}
				if !reflect.DeepEqual(got, msg) {
					t.Fatalf("round trip:\n got %#v\nwant %#v", got, msg)
				}
			})
		}
	}
}

func TestSnakeCaseInBothEncodings(t *testing.T) {
	r := &ResolveRequest{Profile: "p", Workspace: "/w", SessionID: "s"}
	j, _ := Encode(JSON, r)
	if !bytes.Contains(j, []byte(`"session_id"`)) {
		t.Fatalf("json lacks session_id: %s", j)
	}
	m, _ := Encode(Msgpack, r)
	var raw map[string]any
	if err := msgpack.Unmarshal(m, &raw); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw["session_id"]; !ok {
		t.Fatalf("msgpack keys = %v, want session_id", raw)
	}
}

func TestProfileRefForms(t *testing.T) {
	var r CheckRequest
	if err := Decode(JSON, []byte(`{"argv":["ls"],"profile":"workspace"}`), &r); err != nil || r.Profile.Name != "workspace" || r.Profile.Resolved != nil {
		t.Fatalf("name form: %+v %v", r.Profile, err)
	}
	if err := Decode(JSON, []byte(`{"argv":["ls"],"profile":{"name":"offline","net":{"mode":"none"}}}`), &r); err != nil || r.Profile.Resolved == nil || r.Profile.Resolved.Net.Mode != "none" {
		t.Fatalf("object form: %+v %v", r.Profile, err)
	}
	for _, bad := range []string{`{"argv":["ls"],"profile":7}`, `{"argv":["ls"],"profile":{"nmae":"x"}}`, `{"argv":["ls"],"profile":[1]}`} {
		if err := Decode(JSON, []byte(bad), &r); CodeOf(err) != CodeBadRequest {
			t.Errorf("%s: err %v, want 400", bad, err)
		}
	}
}

func TestDetectFormat(t *testing.T) {
	tests := []struct {
		ct   string
		body string
		want Format
	}{
		{"", `{"a":1}`, JSON},
		{"", "  \n{", JSON},
		{ContentJSON, "\x81\xa1a\x01", JSON},
		{ContentMsgpack, `{"a":1}`, Msgpack},
		{"", "\x81\xa1a\x01", Msgpack},
		{"", "", JSON},
	}
	for _, tt := range tests {
		if got := DetectFormat(tt.ct, []byte(tt.body)); got != tt.want {
			t.Errorf("DetectFormat(%q, %q) = %v, want %v", tt.ct, tt.body, got, tt.want)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	big := `{"profile":"` + strings.Repeat("a", MaxRequestBytes) + `"}`
	tests := []struct {
		name string
		f    Format
		body string
		code int
		msg  string
	}{
		{"empty", JSON, "", CodeBadRequest, "empty request body"},
		{"bad json", JSON, `{"profile":`, CodeBadRequest, "malformed json body"},
		{"unknown field", JSON, `{"profil":"x"}`, CodeBadRequest, `unknown field "profil"`},
		{"trailing", JSON, `{"profile":"x"} {}`, CodeBadRequest, "after the object"},
		{"wrong type", JSON, `{"profile":7}`, CodeBadRequest, "malformed json body"},
		{"bad msgpack", Msgpack, "\xc1\xc1", CodeBadRequest, "malformed msgpack body"},
		{"msgpack not a map", Msgpack, "\x93\x01\x02\x03", CodeBadRequest, "malformed msgpack body"},
		{"msgpack trailing", Msgpack, "\x80\x80", CodeBadRequest, "unexpected bytes"},
		{"too large", JSON, big, CodeTooLarge, "the limit is"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r ResolveRequest
			err := Decode(tt.f, []byte(tt.body), &r)
			var we *Error
			if !errors.As(err, &we) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if we.Code != tt.code || !strings.Contains(we.Message, tt.msg) {
				t.Fatalf("err = %v, want code %d containing %q", we, tt.code, tt.msg)
			}
		})
	}
}

func TestCodes(t *testing.T) {
	if got := CodeOf(Errorf(CodeNotFound, "x")); got != CodeNotFound {
		t.Errorf("CodeOf = %d", got)
	}
	if got := CodeOf(errors.New("plain")); got != CodeInternal {
		t.Errorf("CodeOf(plain) = %d", got)
	}
	for in, want := range map[string]int{"404": 404, "x": 500, "": 500, "42": 500} {
		if got := ParseCode(in); got != want {
			t.Errorf("ParseCode(%q) = %d, want %d", in, got, want)
		}
	}
}

// FuzzDecode feeds arbitrary bodies to the decoder: it must never panic, and
// whatever it accepts must encode again and decode to the same value.
func FuzzDecode(f *testing.F) {
	for _, msg := range sampleMessages() {
		for _, format := range []Format{Msgpack, JSON} {
			b, _ := Encode(format, msg)
			f.Add(b)
		}
	}
	f.Add([]byte("\xdd\xff\xff\xff\xff"))
	f.Add([]byte("\xdf\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, body []byte) {
		format := DetectFormat("", body)
		for _, target := range []any{&ResolveRequest{}, &RunRequest{}, &AuditEvent{}, &Profile{}, &CheckRequest{}} {
			if err := Decode(format, body, target); err != nil {
				var we *Error
				if !errors.As(err, &we) || (we.Code != CodeBadRequest && we.Code != CodeTooLarge) {
					t.Fatalf("error %v is not a 400/413", err)
				}
				continue
			}
			again, err := Encode(format, target)
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			back := reflect.New(reflect.TypeOf(target).Elem()).Interface()
			if err := Decode(format, again, back); err != nil {
				t.Fatalf("decode of re-encoded %x: %v", again, err)
			}
		}
	})
}
