package store

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moatsec/moat/pkg/wire"
)

// anchored builds a store over several segments and returns the last
// checkpoint it published: what the anchor outside the store holds.
func anchored(t *testing.T) (string, *Checkpoint) {
	t.Helper()
	dir := t.TempDir()
	var last *Checkpoint
	s := open(t, dir, func(o *Options) {
		o.SegmentBytes = 2 << 10
		o.OnCheckpoint = func(c Checkpoint) { last = &c }
	})
	for b := 0; b < 12; b++ {
		if _, err := s.Append(events(25, b*25)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	if last == nil || last.Size != 300 {
		t.Fatalf("last checkpoint %+v", last)
	}
	return dir, last
}

// TestVerifyAgainstTheAnchor reproduces issue 16 point 5: a deleted last
// segment, or a last segment truncated at a frame boundary, passed verify.
// Against the anchor they fail, naming how many records are missing.
func TestVerifyAgainstTheAnchor(t *testing.T) {
	pub, _ := testKey()
	t.Run("whole", func(t *testing.T) {
		dir, anchor := anchored(t)
		rep, err := Verify(dir, pub, anchor)
		if err != nil || !rep.OK || rep.AnchorSize != 300 {
			t.Fatalf("%v %+v %+v", err, rep, rep.Problem)
		}
	})
	t.Run("last segment deleted", func(t *testing.T) {
		dir, anchor := anchored(t)
		names, _ := segments(dir)
		os.Remove(filepath.Join(dir, names[len(names)-1]))
		if rep, _ := Verify(dir, pub, nil); !rep.OK {
			t.Fatalf("without the anchor the loss is invisible, yet verify failed: %+v", rep.Problem)
		}
		rep, _ := Verify(dir, pub, anchor)
		if rep.OK || rep.Missing == 0 || rep.Missing != 300-rep.LastSeq || !strings.Contains(rep.Problem.Reason, fmt.Sprintf("%d records are missing", rep.Missing)) {
			t.Fatalf("a deleted last segment: %+v %+v", rep, rep.Problem)
		}
	})
	t.Run("truncated at a frame boundary", func(t *testing.T) {
		dir, anchor := anchored(t)
		names, _ := segments(dir)
		seg := filepath.Join(dir, names[len(names)-1])
		data, _ := os.ReadFile(seg)
		var blocks []int64
		readFramesFrom(strings.NewReader(string(data)), 0, int64(len(data)), func(fr frame) error {
			if fr.typ == frameBlock {
				blocks = append(blocks, fr.offset)
			}
			return nil
		})
		os.Truncate(seg, blocks[len(blocks)-1]) // the last block and what follows it
		rep, _ := Verify(dir, pub, anchor)
		if rep.OK || rep.Missing == 0 || !strings.Contains(rep.Problem.Reason, "missing") {
			t.Fatalf("a truncated tail: %+v %+v", rep, rep.Problem)
		}
	})
	t.Run("a forged anchor", func(t *testing.T) {
		dir, anchor := anchored(t)
		anchor.Size = 1000
		rep, _ := Verify(dir, pub, anchor)
		if rep.OK || !strings.Contains(rep.Problem.Reason, "anchor") || !strings.Contains(rep.Problem.Reason, "signature") {
			t.Fatalf("a forged anchor: %+v", rep.Problem)
		}
	})
	t.Run("a store that forked from the anchor", func(t *testing.T) {
		dir, anchor := anchored(t)
		anchor.Root = append([]byte(nil), anchor.Root...)
		anchor.Root[0] ^= 1
		_, priv := testKey()
		anchor.Sig = nil
		signed := sign(priv, anchor)
		rep, _ := Verify(dir, pub, signed)
		if rep.OK || !strings.Contains(rep.Problem.Reason, "anchor") {
			t.Fatalf("a chain that disagrees with the anchor: %+v", rep.Problem)
		}
	})
}

// TestOpenChecksTheAnchor: a store behind its anchor does not open for
// writing (appends would fork the chain and hide the loss), and nothing in
// it is changed, not even an incomplete final frame.
func TestOpenChecksTheAnchor(t *testing.T) {
	_, priv := testKey()
	dir, anchor := anchored(t)
	names, _ := segments(dir)
	os.Remove(filepath.Join(dir, names[len(names)-1]))
	prev := filepath.Join(dir, names[len(names)-2])
	f, _ := os.OpenFile(prev, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte("B\x00\x00\x01\x00half"))
	f.Close()
	before, _ := os.ReadFile(prev)
	_, err := Open(Options{Dir: dir, SigningKey: priv, Anchor: anchor})
	var ae *AnchorError
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "records are missing") {
		t.Fatalf("a store behind its anchor opened: %v", err)
	}
	if after, _ := os.ReadFile(prev); string(after) != string(before) {
		t.Fatal("a store behind its anchor was changed")
	}
	dir2, anchor2 := anchored(t)
	s2, err := Open(Options{Dir: dir2, SigningKey: priv, Anchor: anchor2})
	if err != nil {
		t.Fatalf("a whole store against its anchor: %v", err)
	}
	s2.Close()
}

// TestVerifyReportsOpenRuns: a run whose decision was recorded but whose
// exit never was is reported, not OK (issue 9: foreman stopped sandboxd
// mid-run, the exit was lost, and verify said OK).
func TestVerifyReportsOpenRuns(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ev := func(kind, req, verdict string) *wire.AuditEvent {
		return &wire.AuditEvent{ID: wire.NewID(), Source: "sandboxd", Kind: kind, RequestID: req, Verdict: verdict}
	}
	s.Append([]*wire.AuditEvent{
		ev("run.decision", "r1", "allow"), ev("run.exit", "r1", "allow"),
		ev("run.decision", "r2", "deny"), // denied: nothing ran, no exit due
		ev("run.decision", "r3", "allow"), ev("run.failed", "r3", "allow"),
		ev("run.decision", "r4", "allow"), // its exit was lost
	})
	s.Close()
	rep, _ := Verify(dir, nil, nil)
	if rep.OK || rep.OpenRuns != 1 || len(rep.OpenRunIDs) != 1 || rep.OpenRunIDs[0] != "r4" || rep.Problem == nil || !strings.Contains(rep.Problem.Reason, "no exit record") {
		t.Fatalf("open runs: %+v %+v", rep, rep.Problem)
	}
}

func sign(priv ed25519.PrivateKey, c *Checkpoint) *Checkpoint {
	c.Sig = ed25519.Sign(priv, c.signed())
	return c
}
