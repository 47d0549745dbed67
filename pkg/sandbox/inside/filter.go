package inside

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
)

// Filter is a run's seccomp filter as sandboxd assembled it, once per kind
// (pkg/sandbox's seccomp_linux.go), and what its supervisor needs to name
// what the filter hands over.
type Filter struct {
	Program Program `json:"program"`
	// Names maps the number of every call the filter hands the supervisor
	// to the call's name.
	Names map[int]string `json:"names"`
	// CloneFlagsArg is which argument of clone holds its flags.
	CloneFlagsArg int `json:"clone_flags_arg"`
}

// SockFilter is one classic BPF instruction (struct sock_filter).
type SockFilter struct {
	Code uint16 `json:"c"`
	Jt   uint8  `json:"t"`
	Jf   uint8  `json:"f"`
	K    uint32 `json:"k"`
}

// Program is a classic BPF program. In JSON it is a string: its
// instructions' bytes in base64, 8 each — code, jt, jf, k, in struct
// sock_filter's order, little-endian whatever the host —
// one string a helper decodes in microseconds, where an object for each of
// a few hundred instructions cost it ~0.1 ms warm and more as it starts.
type Program []SockFilter

// sockFilterLen is the size of one struct sock_filter.
const sockFilterLen = 8

// MarshalJSON encodes p as its instructions' bytes, in base64.
func (p Program) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, sockFilterLen*len(p))
	for _, f := range p {
		b = binary.LittleEndian.AppendUint16(b, f.Code)
		b = append(b, f.Jt, f.Jf)
		b = binary.LittleEndian.AppendUint32(b, f.K)
	}
	return json.Marshal(b)
}

// UnmarshalJSON decodes what MarshalJSON encoded; a length that is not a
// whole number of instructions is refused.
func (p *Program) UnmarshalJSON(data []byte) error {
	if len(data) == 0 || data[0] != '"' {
		return fmt.Errorf("seccomp program: want a base64 string, got %.20q", data)
	}
	var b []byte
	if err := json.Unmarshal(data, &b); err != nil {
		return fmt.Errorf("seccomp program: %v", err)
	}
	if len(b)%sockFilterLen != 0 {
		return fmt.Errorf("seccomp program: %d bytes, not whole instructions of %d", len(b), sockFilterLen)
	}
	out := make(Program, len(b)/sockFilterLen)
	for i := range out {
		r := b[i*sockFilterLen:]
		out[i] = SockFilter{Code: binary.LittleEndian.Uint16(r), Jt: r[2], Jf: r[3], K: binary.LittleEndian.Uint32(r[4:])}
	}
	*p = out
	return nil
}
