package wire

import (
	"strings"
	"testing"
)

func TestAuditQueryValidate(t *testing.T) {
	for name, q := range map[string]AuditQuery{
		"negative limit":  {Limit: -1},
		"negative bytes":  {MaxBytes: -5},
		"long text":       {Text: strings.Repeat("x", MaxPathBytes+1)},
		"id with a space": {RequestID: "a b"},
		"NUL in kind":     {Kind: "run\x00exit"},
	} {
		body, _ := Encode(JSON, &q)
		var got AuditQuery
		if err := Decode(JSON, body, &got); CodeOf(err) != CodeBadRequest {
			t.Errorf("%s: %v, want a 400", name, err)
		}
	}
	ok := AuditQuery{Kind: KindRunExit, Text: "go test", Limit: 5000, Cursor: 7}
	body, _ := Encode(Msgpack, &ok)
	var got AuditQuery
	if err := Decode(Msgpack, body, &got); err != nil || got.Cursor != 7 {
		t.Fatalf("a good query: %v %+v", err, got)
	}
}
