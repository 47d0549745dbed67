package policy

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/wire"
)

// TestDeeplyNestedScript: a script nested past what can be judged is a
// prompt, answered at once — not a parser recursing until the process
// dies of a stack overflow (which no recover catches), nor seconds of
// work per check. The bus admits 512 KiB; these are a few hundred KiB.
func TestDeeplyNestedScript(t *testing.T) {
	w := newWorld(t)
	e := New(Options{})
	const n = 150_000
	for name, src := range map[string]string{
		"subshells":     strings.Repeat("(", n) + "true" + strings.Repeat(")", n),
		"substitutions": strings.Repeat("echo $(", n/2) + "true" + strings.Repeat(")", n/2),
		"groups":        strings.Repeat("{ ", n/2) + "true" + strings.Repeat("; }", n/2),
		// Escaped closers close nothing: nesting no count of closers sees.
		"escaped closers": strings.Repeat("(:\\);", n) + strings.Repeat(")", n),
		"case patterns":   strings.Repeat("( case a in a) :;; esac; ", n/10) + strings.Repeat(")", n/10),
		// Within the brackets, nesting whose words cost their depth again
		// at every level: stopped by the work it takes, well before it.
		"substitutions within the brackets": strings.Repeat("echo $(:\\);", 3000) + strings.Repeat(")", 3000),
	} {
		start := time.Now()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		d := w.decide(t, e, "workspace-write", sh(src))
		runtime.ReadMemStats(&after)
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<30 {
			t.Errorf("%s: judging it allocated %d MiB", name, grew>>20)
		}
		if d.Verdict != wire.VerdictPrompt || d.Reasons[0].Rule != "shell.too-deep" {
			t.Errorf("%s nested %d deep: %s %v", name, n, d.Verdict, d.Reasons)
		}
		t.Logf("%s: %s", name, time.Since(start))
	}
	// A flat script of the bus's largest size is judged.
	flat := strings.Repeat("ls src; ", 500_000/8)
	if d := w.decide(t, e, "workspace-write", sh(flat)); d.Verdict != wire.VerdictAllow {
		t.Errorf("a flat script of 500 KB: %s %v", d.Verdict, d.Reasons)
	}
	// Nesting an ordinary script has stays judged.
	if d := w.decide(t, e, "workspace-write", sh("(cd src && { echo $(ls $(pwd)); })")); d.Verdict != wire.VerdictAllow {
		t.Errorf("an ordinary nested script: %s %v", d.Verdict, d.Reasons)
	}
}
