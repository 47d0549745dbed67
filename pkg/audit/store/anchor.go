package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// AnchorError is a store that does not reach the checkpoint kept outside
// it: its tail was deleted or truncated, or the chain was replaced.
type AnchorError struct {
	Dir     string
	LastSeq uint64
	Anchor  Checkpoint
	Reason  string
}

func (e *AnchorError) Error() string {
	return fmt.Sprintf("audit store %s does not reach its anchor (the checkpoint of %d records signed %s): %s; "+
		"nothing was changed. Run `auditd verify --dir %s --anchor bus` to see it, and restore the store from a backup",
		e.Dir, e.Anchor.Size, time.Unix(0, e.Anchor.TS).UTC().Format(time.RFC3339), e.Reason, e.Dir)
}

// checkAnchor compares the loaded store with the latest checkpoint kept
// outside it (nil: none yet): a store that ends before the anchor, or whose
// chain disagrees with it, must not be appended to, since that would fork
// the chain and hide the loss.
func (s *Store) checkAnchor(anchor *Checkpoint) error {
	if anchor == nil {
		return nil
	}
	fail := func(format string, args ...any) error {
		return &AnchorError{Dir: s.opts.Dir, LastSeq: s.seq, Anchor: *anchor, Reason: fmt.Sprintf(format, args...)}
	}
	if s.seq < anchor.Size {
		return fail("the store ends at record %d, so %d records are missing (a deleted or truncated tail)", s.seq, anchor.Size-s.seq)
	}
	root, err := s.hashAt(anchor.Size)
	if err != nil {
		return fail("%v", err)
	}
	if root != nil && !bytes.Equal(root, anchor.Root) {
		return fail("the chain at record %d disagrees with it: the store was rewritten or replaced", anchor.Size)
	}
	return nil
}

// hashAt is the chain's hash after record seq (nil: seq is before the
// oldest retained record, so it cannot be checked).
func (s *Store) hashAt(seq uint64) ([]byte, error) {
	if seq == s.seq {
		return s.head, nil
	}
	for _, seg := range s.order {
		items := s.index[seg]
		i := sort.Search(len(items), func(i int) bool { return items[i].Seq >= seq })
		if i == len(items) || items[i].Seq != seq {
			continue
		}
		recs, err := s.block(seg, items[i].Offset)
		if err != nil {
			return nil, fmt.Errorf("read record %d: %w", seq, err)
		}
		for _, r := range recs {
			if r.Seq == seq {
				return r.Hash, nil
			}
		}
	}
	return nil, nil
}

// WriteAnchorFile keeps c as dir/checkpoint.json, replaced atomically: a
// second copy of the anchor, beside the one on the bus.
func WriteAnchorFile(dir string, c Checkpoint) error {
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".checkpoint.json.tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("anchor file: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("anchor file: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "checkpoint.json")); err != nil {
		return fmt.Errorf("anchor file: %w", err)
	}
	syncDir(dir)
	return nil
}

// ReadAnchorFile reads a checkpoint kept as JSON: path is the file, or a
// directory holding checkpoint.json (auditd --anchor-dir).
func ReadAnchorFile(path string) (*Checkpoint, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, "checkpoint.json")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("anchor: %w", err)
	}
	return ParseAnchor(data)
}

// ParseAnchor reads a checkpoint as JSON (what moat.audit.checkpoint, the
// anchor bucket and the anchor file hold).
func ParseAnchor(data []byte) (*Checkpoint, error) {
	var c Checkpoint
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("anchor: not a checkpoint: %w", err)
	}
	if c.Origin != CheckpointOrigin || len(c.Root) == 0 || len(c.Sig) == 0 {
		return nil, errors.New("anchor: not a moat audit checkpoint (origin, root or signature missing)")
	}
	return &c, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.opts.Dir }
