package policyd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/moatsec/moat/pkg/policy"
	"github.com/moatsec/moat/pkg/wire"
)

// rulesRecord keeps Config.RulesFile equal to the "rule" grants in force:
// one prefix_rule line each, in Codex's format, so that a person can read
// them, or copy one to Codex or to a rules file. moat does not load the file:
// a line there would allow its command in every workspace and profile, while
// the grant covers its own (cmd/policyd refuses a file among the rules it
// loads). A grant's line goes when the grant goes.
//
// Invariants:
//   - the file is written whole, a temporary file renamed over it, so a
//     reader sees the old list or the new one, each of which loads;
//   - writes are serialised by mu, and each lists the grants in memory
//     after taking mu, so the last write is of the latest state (lock
//     order: rulesRecord.mu, then grants.mu);
//   - it is written when a rule grant is made or revoked here, and when
//     the bucket's watcher sees one come or go (another copy, or the first
//     load: a grant revoked while this policyd was away loses its line).
type rulesRecord struct {
	path string
	mu   sync.Mutex
	last string // what this policyd last wrote
}

// rulesRecordHeader opens the file.
const rulesRecordHeader = `# moat: the "rule" grants in force, one prefix_rule each (Codex's format).
# policyd writes this file anew from the MOAT_GRANTS bucket whenever a rule
# grant is made or revoked: edits here are lost. moat does not load it: each
# grant covers only the workspace and profile it was made in (moat grants
# lists them; moat revoke ID ends one and takes its line out). To allow a
# command in every workspace and profile, copy its line into a rules file.
`

// ruleLine is a grant's line: its words, and who granted it where.
func ruleLine(gr *wire.Grant) (string, error) {
	return policy.PrefixRuleLine(gr.Argv, "allow", fmt.Sprintf("moat grant %s by %s at %s (asked in %s, profile %s)",
		gr.ID, gr.By, gr.At.Format(time.RFC3339), gr.Workspace, gr.Profile))
}

// sync writes the file from the grants list gives (the rule ones), unless
// it holds that already. With no rule grant and no file, it writes nothing.
func (r *rulesRecord) sync(list func() []wire.Grant) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	b.WriteString(rulesRecordHeader)
	n := 0
	for _, gr := range list() {
		if gr.Kind != wire.GrantRule {
			continue
		}
		line, err := ruleLine(&gr)
		if err != nil { // stored by another hand: said, not written
			line = "# grant " + gr.ID + " is not written: " + strings.ToValidUTF8(strings.ReplaceAll(err.Error(), "\n", " "), "?") + "\n"
		}
		b.WriteString(line)
		n++
	}
	text := b.String()
	if text == r.last {
		return nil
	}
	if _, err := os.Stat(r.path); n == 0 && errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := writeAtomic(r.path, text); err != nil {
		return fmt.Errorf("write the rule grants to %s: %w", r.path, err)
	}
	r.last = text
	return nil
}

// writeAtomic replaces path with text: a temporary file beside it, synced,
// renamed over it.
func writeAtomic(path, text string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after the rename, nothing there
	_, err = f.WriteString(text)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// Loads reports whether file is among the rules files w loads: one of its
// Paths, or a *.rules file directly in one of its directories (symbolic
// links followed where they exist).
func (w *RulesWatcher) Loads(file string) bool {
	f := resolved(file)
	for _, p := range w.Paths {
		p = resolved(p)
		if f == p || (filepath.Dir(f) == p && strings.HasSuffix(f, ".rules")) {
			return true
		}
	}
	return false
}

// resolved is path made absolute, with the links in it (as far as it
// exists) followed.
func resolved(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return filepath.Clean(path)
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		return r
	}
	if r, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		return filepath.Join(r, filepath.Base(abs))
	}
	return abs
}
