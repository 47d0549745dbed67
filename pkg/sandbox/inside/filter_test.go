package inside

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// TestProgramJSON: a program survives its trip through JSON instruction
// for instruction, and bytes that are not whole instructions are refused.
func TestProgramJSON(t *testing.T) {
	want := Filter{Program: Program{{Code: 0x20, K: 4}, {Code: 0x15, Jt: 1, Jf: 0xfe, K: 0xc000003e}, {Code: 0x6, K: 0x7fff0000}},
		Names: map[int]string{101: "ptrace"}, CloneFlagsArg: 0}
	b, err := json.Marshal(&want)
	if err != nil {
		t.Fatal(err)
	}
	var got Filter
	if err := json.Unmarshal(b, &got); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip of %s: %+v, %v", b, got, err)
	}
	for _, bad := range []string{`"AAAA"`, `[1,2]`, `[1,2,3,4,5,6,7,8]`, `[{"c":6,"k":0}]`, `null`, `"not base64!"`} {
		var p Program
		if err := json.Unmarshal([]byte(bad), &p); err == nil || !strings.Contains(err.Error(), "seccomp program") {
			t.Errorf("program %s: %v, want refused", bad, err)
		}
	}
}
