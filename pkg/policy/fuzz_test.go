package policy

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/wire"
)

// FuzzShell: any script given to bash -c, and any argv, gets a verdict with
// a reason, never a panic.
func FuzzShell(f *testing.F) {
	for _, s := range []string{
		"ls -la | grep x > out.txt", "curl x | sh", ":(){ :|:& };:", "eval \"$(curl x)\"", "cat <<EOF | sh\nrm -rf /\nEOF",
		"for i in $(seq 3); do echo $i; done", "f() { f | f & }; f", "a=$((1+2)); echo ${a:-x}", "((", "[[ -f x ]] && rm x",
		"cd /etc; cd ..; echo > x", "xargs -I{} sh -c '{}'", "env -S 'sh -c \"curl x\"'", "select x in a b; do echo $x; done",
		"coproc cat", "echo {a,b}{c,d}", "time (curl x)", "case $x in *) rm -rf /;; esac", "sudo -s", "exec 3>/etc/x",
	} {
		f.Add(s)
	}
	w := newWorld(f)
	e := New(Options{})
	f.Fuzz(func(t *testing.T, script string) {
		for _, argv := range [][]string{{"bash", "-c", script}, strings.Fields(script)} {
			if len(argv) == 0 || strings.ContainsRune(script, 0) {
				continue
			}
			d, err := e.Decide(&Input{Argv: argv, Profile: w.profiles["workspace-write"]})
			if err != nil {
				t.Fatalf("%q: %v", argv, err)
			}
			if d.Verdict != wire.VerdictAllow && d.Verdict != wire.VerdictPrompt && d.Verdict != wire.VerdictDeny || len(d.Reasons) == 0 {
				t.Fatalf("%q: decision %+v", argv, d)
			}
		}
	})
}

// BenchmarkDecidePipeline is the in-process decision for a three-command
// pipeline with 200 file rules loaded; it reports the median.
func BenchmarkDecidePipeline(b *testing.B) {
	w := newWorld(b)
	var src strings.Builder
	for i := 0; i < 200; i++ {
		fmt.Fprintf(&src, "prefix_rule(pattern=[\"tool%d\", [\"run\", \"exec\"]], decision=\"prompt\", match=[\"tool%d run x\"])\n", i, i)
	}
	dir := b.TempDir()
	writeRules(b, dir, "many.rules", src.String())
	rs, err := LoadRules(dir)
	if err != nil || rs.Len() != 200 {
		b.Fatalf("%v, %d rules", err, rs.Len())
	}
	e := New(Options{})
	e.SetRules(rs)
	in := &Input{Argv: []string{"bash", "-c", "cat README.md | grep -v '^#' | wc -l"}, Profile: w.profiles["workspace-write"]}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		d, err := e.Decide(in)
		if err != nil || d.Verdict != wire.VerdictAllow {
			b.Fatalf("%+v %v", d, err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1000, "p50-µs")
}

// FuzzSed: any sed script and any f-string source are judged or rewritten
// without a panic; a source without an f-string is left as it is, and the
// rewrite keeps every line where it was.
func FuzzSed(f *testing.F) {
	for _, s := range []string{"@d\n@e(1)\ndef f():\n  pass\n\n", "def f(x: int = 1) -> str:\n  y: T = 2", "1e curl x|sh", "s/a/b/w /etc/x", "s/.*/id/e", "/x/{p;d}", "$a\\\nend", "y/ab/cd/", "\\%x%d", "s", "e", ":a;N;ba"} {
		f.Add(s)
	}
	w := newWorld(f)
	e := New(Options{})
	f.Fuzz(func(t *testing.T, script string) {
		if strings.ContainsRune(script, 0) {
			return
		}
		d, err := e.Decide(&Input{Argv: []string{"sed", "-n", script, "file.txt"}, Profile: w.profiles["workspace-net"]})
		if err != nil || len(d.Reasons) == 0 {
			t.Fatalf("%q: %+v %v", script, d, err)
		}
		out := desugarFStrings([]byte(script))
		if strings.Count(string(out), "\n") != strings.Count(script, "\n") {
			t.Fatalf("%q: the rewrite moved lines: %q", script, out)
		}
		if !strings.ContainsAny(script, "fF") && string(out) != script {
			t.Fatalf("%q changed without an f-string: %q", script, out)
		}
		if stripped := stripAnnotations([]byte(script)); len(stripped) != len(script) || strings.Count(string(stripped), "\n") != strings.Count(script, "\n") {
			t.Fatalf("%q: blanking annotations moved text: %q", script, stripped)
		}
		if dec := applyDecorators([]byte(script)); strings.Count(string(dec), "\n") < strings.Count(script, "\n") {
			t.Fatalf("%q: rewriting decorators lost lines: %q", script, dec)
		}
		shlexSplit(script)
	})
}
