package wire

import (
	"strings"
	"testing"
)

func TestRefusalOf(t *testing.T) {
	cases := []struct {
		name     string
		argv     []string
		d        *Decision
		want     *Refusal // the fields checked; nil: no refusal
		sentence string
	}{
		{"allow", []string{"ls"}, &Decision{Verdict: VerdictAllow, Reasons: []Reason{{Rule: "safe.read-only"}}}, nil, ""},
		{"no decision", []string{"ls"}, nil, nil, ""},
		{"path", []string{"bash", "-c", "echo x > /etc/x"}, &Decision{Verdict: VerdictDeny, Reasons: []Reason{{Rule: "fs.write-outside", Message: "writes /etc/x"}}},
			&Refusal{Layer: LayerPolicy, Rule: "fs.write-outside", Kind: RefusedPath, Target: "echo x > /etc/x"}, "policy refused"},
		{"host", []string{"curl", "https://x"}, &Decision{Verdict: VerdictDeny, Reasons: []Reason{{Rule: "net.client", Message: "no network"}}},
			&Refusal{Layer: LayerPolicy, Rule: "net.client", Kind: RefusedHost, Target: "curl https://x"}, "policy refused"},
		{"prompt", []string{"python3", "-c", "1"}, &Decision{Verdict: VerdictPrompt, Reasons: []Reason{{Rule: "exec.inline-code", Message: "inline", Source: "a.rules:3"}}},
			&Refusal{Layer: LayerPolicy, Rule: "exec.inline-code", Kind: RefusedCommand, Target: "python3 -c 1", Source: "a.rules:3", Allow: Remedy{Approval: true}}, "needs a person"},
		{"nobody answered", []string{"x"}, &Decision{Verdict: VerdictDeny, Reasons: []Reason{{Rule: ReasonApprovalTimeout, Message: "late"}}},
			&Refusal{Layer: LayerPolicy, Rule: ReasonApprovalTimeout, Kind: RefusedCommand, Target: "x", Allow: Remedy{Approval: true}}, "none came"},
		{"stack down", []string{"x"}, &Decision{Verdict: VerdictDeny, Reasons: []Reason{{Rule: ReasonPolicyUnavailable, Message: "no policyd"}}},
			&Refusal{Layer: LayerPolicy, Rule: ReasonPolicyUnavailable, Kind: RefusedCommand, Target: "x"}, "could not judge"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := RefusalOf(tc.argv, tc.d)
			if tc.want == nil {
				if got != nil {
					t.Fatalf("got %+v, want none", got)
				}
				return
			}
			if got == nil || got.Layer != tc.want.Layer || got.Rule != tc.want.Rule || got.Kind != tc.want.Kind || got.Target != tc.want.Target ||
				got.Source != tc.want.Source || got.Allow != tc.want.Allow || !strings.Contains(got.Message, tc.sentence) || len(got.Reasons) != len(tc.d.Reasons) {
				t.Fatalf("got %+v\nwant %+v (sentence with %q)", got, tc.want, tc.sentence)
			}
		})
	}
}

func TestLimitRefusal(t *testing.T) {
	l := Limits{TimeoutMS: 1500, MemoryBytes: 64 << 20, Pids: 16, CPUMS: 1000}
	for layer, want := range map[string]string{
		LayerMemory: "memory_bytes=67108864", LayerPids: "pids=16", LayerCPU: "cpu_ms=1000", LayerTimeout: "timeout_ms=1500",
	} {
		r := LimitRefusal(layer, l)
		if r.Layer != layer || r.Kind != RefusedLimit || r.Target != want || r.Allow.Limit == "" || r.Allow.Approval || r.Message == "" {
			t.Errorf("%s: %+v", layer, r)
		}
	}
}

func TestSeccompAndFSRefusal(t *testing.T) {
	if SeccompRefusal("offline", nil) != nil || FSRefusal("offline", nil) != nil {
		t.Fatal("a refusal with nothing refused")
	}
	s := SeccompRefusal("offline", []SyscallDenial{{Syscall: "socket", Detail: "AF_INET", Count: 2, Process: "curl", Reason: "no network: the profile's net is none"},
		{Syscall: "ptrace", Count: 1, Reason: "no tracing or reading other processes"}})
	if s.Layer != LayerSeccomp || s.Kind != RefusedSyscall || s.Target != "socket" || s.Source != "profile offline" || len(s.Syscalls) != 2 ||
		!strings.Contains(s.Message, "socket(AF_INET) ×2 by curl") || !strings.Contains(s.Message, "1 other kinds") || !strings.Contains(s.Message, "a profile with network") {
		t.Fatalf("%+v", s)
	}
	if got := s.Syscalls[1].Line(s.Source); got != "seccomp refused ptrace ×1 (profile offline: no tracing or reading other processes)" {
		t.Fatalf("line %q", got)
	}
	f := FSRefusal("workspace-write", []PathDenial{{Path: "/etc/motd", Access: "write", Error: "EROFS", Rule: "write", Reason: "not under its writable roots"}})
	if f.Layer != LayerFS || f.Kind != RefusedPath || f.Rule != "write" || f.Target != "/etc/motd" || !strings.Contains(f.Message, "writing /etc/motd (EROFS)") {
		t.Fatalf("%+v", f)
	}
	if got := f.Paths[0].Line(f.Source); got != "filesystem refused write to /etc/motd (profile workspace-write: not under its writable roots)" {
		t.Fatalf("line %q", got)
	}
}
