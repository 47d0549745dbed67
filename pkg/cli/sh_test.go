package cli

import (
	"strings"
	"testing"
)

func TestShellArgv(t *testing.T) {
	cases := []struct {
		args  []string
		want  string // argv joined by |
		stdin bool
	}{
		{[]string{"-c", "echo hi"}, "bash|-c|echo hi", false},
		{[]string{"-lc", "echo hi"}, "bash|-l|-c|echo hi", false},
		{[]string{"-e", "-c", "false", "name", "a"}, "bash|-e|-c|false|name|a", false},
		{[]string{"-o", "pipefail", "-c", "x"}, "bash|-o|pipefail|-c|x", false},
		{[]string{"script.sh", "a"}, "bash|script.sh|a", false},
		{[]string{"--", "-c"}, "bash|--|-c", false}, // a script file named -c
		{nil, "bash|-c", true},
		{[]string{"-c"}, "", false},
		{[]string{"-Z", "x"}, "", false},
	}
	for _, tc := range cases {
		argv, stdin, err := shellArgv(tc.args)
		if got := strings.Join(argv, "|"); got != tc.want || stdin != tc.stdin || (err != nil) != (tc.want == "") {
			t.Errorf("shellArgv(%q) = %q, stdin %v, err %v; want %q, stdin %v", tc.args, got, stdin, err, tc.want, tc.stdin)
		}
	}
}
