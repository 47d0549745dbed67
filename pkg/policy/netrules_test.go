package policy

import (
	"reflect"
	"testing"

	"github.com/moatsec/moat/pkg/wire"
)

// TestEgressCompile: one decision per host, the strictest wherever it is;
// an allow's protocol picks its port; an address stays an address.
func TestEgressCompile(t *testing.T) {
	tests := []struct {
		name  string
		rules []NetworkRule
		want  []wire.NetRule
	}{
		{"protocols", []NetworkRule{{Host: "a.test", Protocol: "https", Decision: "allow"}, {Host: "a.test", Protocol: "http", Decision: "allow"}},
			[]wire.NetRule{{Entry: "a.test:443", Decision: "allow"}, {Entry: "a.test:80", Decision: "allow"}}},
		{"socks5_tcp is a bare host", []NetworkRule{{Host: "a.test", Protocol: "https", Decision: "allow"}, {Host: "a.test", Protocol: "socks5_tcp", Decision: "allow"}},
			[]wire.NetRule{{Entry: "a.test", Decision: "allow"}}},
		{"socks5_udp admits nothing", []NetworkRule{{Host: "a.test", Protocol: "socks5_udp", Decision: "allow"}}, nil},
		{"a later allow does not undo a deny", []NetworkRule{{Host: "a.test", Protocol: "https", Decision: "forbidden", Source: "x:1"}, {Host: "a.test", Protocol: "https", Decision: "allow", Source: "y:1"}},
			[]wire.NetRule{{Entry: "a.test", Decision: "deny", Source: "x:1"}}},
		{"a later deny overrides an allow", []NetworkRule{{Host: "a.test", Protocol: "https", Decision: "allow"}, {Host: "a.test", Protocol: "http", Decision: "forbidden", Source: "y:2"}},
			[]wire.NetRule{{Entry: "a.test", Decision: "deny", Source: "y:2"}}},
		{"prompt over allow", []NetworkRule{{Host: "a.test", Protocol: "https", Decision: "allow"}, {Host: "a.test", Protocol: "https", Decision: "prompt", Source: "p:3"}},
			[]wire.NetRule{{Entry: "a.test", Decision: "prompt", Source: "p:3"}}},
		{"addresses", []NetworkRule{{Host: "203.0.113.7", Protocol: "https", Decision: "allow"}, {Host: "2001:db8::1", Protocol: "http", Decision: "allow"}, {Host: "2001:db8::2", Protocol: "http", Decision: "forbidden"}},
			[]wire.NetRule{{Entry: "203.0.113.7:443", Decision: "allow"}, {Entry: "[2001:db8::1]:80", Decision: "allow"}, {Entry: "[2001:db8::2]", Decision: "deny"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := compileEgress(tt.rules); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
