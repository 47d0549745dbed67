package wire

import (
	"strings"
	"testing"
)

// TestRequestsValidated decodes requests that no service can serve — the
// inputs issue 9 and 16 found answered 500, 503 or deny — in both formats:
// each is a 400 whose message names the field.
func TestRequestsValidated(t *testing.T) {
	tests := []struct {
		name string
		msg  any
		into func() any
		want string
	}{
		{"run argv [\"\"]", &RunRequest{Argv: []string{""}}, func() any { return &RunRequest{} }, "argv[0] is empty"},
		{"run argv empty", &RunRequest{}, func() any { return &RunRequest{} }, "argv is empty"},
		{"run NUL in argv", &RunRequest{Argv: []string{"echo", "a\x00b"}}, func() any { return &RunRequest{} }, "argv[1] has a NUL byte"},
		{"run 64 KiB request id", &RunRequest{RequestID: strings.Repeat("r", 64<<10), Argv: []string{"ls"}}, func() any { return &RunRequest{} }, "request_id is 65536 bytes"},
		{"run newline in session id", &RunRequest{SessionID: "a\nb", Argv: []string{"ls"}}, func() any { return &RunRequest{} }, "session_id has byte 0x0a"},
		{"run env name with =", &RunRequest{Argv: []string{"ls"}, Env: map[string]string{"A=B": "c"}}, func() any { return &RunRequest{} }, "env name"},
		{"run negative timeout", &RunRequest{Argv: []string{"ls"}, TimeoutMS: -1}, func() any { return &RunRequest{} }, "timeout_ms"},
		{"check argv [\"\"]", &CheckRequest{Argv: []string{""}}, func() any { return &CheckRequest{} }, "argv[0] is empty"},
		{"check NUL", &CheckRequest{Argv: []string{"a\x00"}}, func() any { return &CheckRequest{} }, "NUL byte"},
		{"check approval mode", &CheckRequest{Argv: []string{"ls"}, Approval: "sometimes"}, func() any { return &CheckRequest{} }, `approval "sometimes"`},
		{"check env name with =", &CheckRequest{Argv: []string{"ls"}, Env: map[string]string{"A=B": "c"}}, func() any { return &CheckRequest{} }, "env name"},
		{"check profile of 70,000 empty entries", &CheckRequest{Argv: []string{"ls"}, Profile: RefResolved(&Profile{Name: "p", FS: FS{Write: make([]string, 70_000)}})},
			func() any { return &CheckRequest{} }, "70000 list entries"},
		{"resolve long id", &ResolveRequest{RequestID: strings.Repeat("r", 200)}, func() any { return &ResolveRequest{} }, "request_id is 200 bytes"},
		{"resolve NUL workspace", &ResolveRequest{Workspace: "/w\x00"}, func() any { return &ResolveRequest{} }, "workspace has a NUL"},
	}
	for _, tt := range tests {
		for _, f := range []Format{Msgpack, JSON} {
			t.Run(tt.name+"/"+f.String(), func(t *testing.T) {
				body, err := Encode(f, tt.msg)
				if err != nil {
					t.Fatal(err)
				}
				err = Decode(f, body, tt.into())
				if CodeOf(err) != CodeBadRequest || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err = %v, want a 400 containing %q", err, tt.want)
				}
			})
		}
	}
	var ok RunRequest
	if err := Decode(JSON, []byte(`{"argv":["ls","-la"],"env":{"A":"b"},"request_id":"0190a-b"}`), &ok); err != nil {
		t.Fatalf("a good request: %v", err)
	}
}
