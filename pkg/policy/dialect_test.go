package policy

import (
	"reflect"
	"strings"
	"testing"
)

func TestShlexSplit(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
	}{
		{`echo $HOME`, []string{"echo", "$HOME"}},
		{`a 'b c' "d $e \" \x" f\ g`, []string{"a", "b c", `d $e " \x`, "f g"}},
		{`git log # a comment`, []string{"git", "log"}},
		{`x#y`, []string{"x#y"}},
		{`''`, []string{""}},
	} {
		got, err := shlexSplit(tt.in)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("shlexSplit(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{`'open`, `"open`, `trailing\`} {
		if _, err := shlexSplit(bad); err == nil {
			t.Errorf("shlexSplit(%q) accepted", bad)
		}
	}
}

func TestStripAnnotations(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"def f(x: str, y: int = 1) -> None:\n    pass", "def f(x     , y      = 1)        :\n    pass"},
		{"def g(*words: str, why: list[str] = [\"a:b\"]):", "def g(*words     , why            = [\"a:b\"]):"},
		{"def h(a = lambda x: x): pass", "def h(a = lambda x: x): pass"},
		{"N: int = 3\nd = {\n    k: v,\n}", "N      = 3\nd = {\n    k: v,\n}"},
		{"if x: y()\nelse: z()", "if x: y()\nelse: z()"},
		{"s = \"a: b\"  # c: d", "s = \"a: b\"  # c: d"},
		{"x = a[1:2]", "x = a[1:2]"},
	} {
		if got := string(stripAnnotations([]byte(tt.in))); got != tt.want {
			t.Errorf("strip(%q) =\n%q, want\n%q", tt.in, got, tt.want)
		}
	}
}

func TestApplyDecorators(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"@dec\ndef f():\n    return 1\n\nx = f()\n", "_moat_dec0 = dec\ndef f():\n    return 1\nf = _moat_dec0(f)\nx = f()\n"},
		{"@a\n@b(1,\n   2)\ndef f(x):\n    pass\n", "_moat_dec0 = a\n_moat_dec1 = b(1,\n   2)\ndef f(x):\n    pass\nf = _moat_dec0(_moat_dec1(f))\n"},
		{"@dec\ndef f(): pass", "_moat_dec0 = dec\ndef f(): pass\nf = _moat_dec0(f)\n"},
		{"@dec\ndef f():\n    pass\n# after\ny = 1\n", "_moat_dec0 = dec\ndef f():\n    pass\nf = _moat_dec0(f)  # after\ny = 1\n"},
		{"@dec\ndef f():\n    pass\ny = 1\n", "@dec\ndef f():\n    pass\ny = 1\n"}, // no room: left for the parser
		{"x = \"@dec\"\n", "x = \"@dec\"\n"},
		{"m = a @ b\n", "m = a @ b\n"},
	} {
		if got := string(applyDecorators([]byte(tt.in))); got != tt.want {
			t.Errorf("decorators(%q) =\n%q, want\n%q", tt.in, got, tt.want)
		}
	}
}

// TestCodexDecorators: a decorated rule helper loads and means what Codex
// reads it to mean; one that cannot be rewritten is an error at its line.
func TestCodexDecorators(t *testing.T) {
	rs, err := loadFiles(t, `def forbidding(fn):
    def wrapped(*words):
        prefix_rule(pattern = list(words), decision = "forbidden", justification = fn())
    return wrapped

@forbidding
def no_deploys():
    return "deploys are CI's job"

no_deploys("make", "deploy")
`)
	if err != nil {
		t.Fatal(err)
	}
	if ev := rs.Check(argv("make deploy prod"), false, ""); ev.Decision != "forbidden" || ev.MatchedRules[0].PrefixRuleMatch.Justification != "deploys are CI's job" {
		t.Fatalf("%+v", ev)
	}
	if _, err := loadFiles(t, "def d(f):\n    return f\n@d\ndef f():\n    pass\nf()\n"); err == nil || !strings.Contains(err.Error(), "a.rules:3") {
		t.Fatalf("err = %v, want one at a.rules:3", err)
	}
}

func TestDesugarFStrings(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`f"{tool} apply"`, `"{} apply".format((tool))`},
		{`x = F'{a!r}-{b}'`, `x = '{!r}-{}'.format((a), (b))`},
		{`f"{{literal}} {d['k']}"`, `"{{literal}} {}".format((d['k']))`},
		{`fr"\d{n}"`, `r"\d{}".format((n))`},
		{"f\"\"\"a\n{b}\"\"\"", "\"\"\"a\n{}\"\"\".format((b))"},
		{`# f"{x}" in a comment`, `# f"{x}" in a comment`},
		{`"f{x}" + elf"no"`, `"f{x}" + elf"no"`},
		{`f"{unclosed"`, `f"{unclosed"`},
	} {
		if got := string(desugarFStrings([]byte(tt.in))); got != tt.want {
			t.Errorf("desugar(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
