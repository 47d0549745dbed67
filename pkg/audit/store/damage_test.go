package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/moatsec/moat/pkg/wire"
)

// TestDamageIsNeverCutAway reproduces issue 16: a one-byte flip in the
// middle of the active segment, then 80 more acked events, then a restart.
// The store must refuse to open (naming the segment, the offset and the
// command to run), leave every byte where it was, and still answer
// read-only queries for what it can read.
func TestDamageIsNeverCutAway(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	for b := 0; b < 10; b++ {
		if _, err := s.Append(events(30, b*30)); err != nil {
			t.Fatal(err)
		}
	}
	seg := filepath.Join(dir, "seg-00000001.log")
	data, _ := os.ReadFile(seg)
	flipAt := len(data) / 2
	data[flipAt] ^= 0x01
	if err := os.WriteFile(seg, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(events(80, 300)); err != nil { // acked upstream
		t.Fatal(err)
	}
	s.Close()
	before, _ := os.ReadFile(seg)

	_, priv := testKey()
	_, err := Open(Options{Dir: dir, SigningKey: priv})
	var dmg *DamageError
	if !errors.As(err, &dmg) {
		t.Fatalf("the store opened over damage: %v", err)
	}
	if dmg.Segment != "seg-00000001.log" || dmg.Offset <= 0 || dmg.Offset > int64(flipAt) ||
		!strings.Contains(err.Error(), "auditd verify --dir "+dir) {
		t.Fatalf("the error does not say where or what to do: %v", err)
	}
	after, _ := os.ReadFile(seg)
	if !bytes.Equal(before, after) {
		t.Fatalf("the damaged segment was changed: %d bytes, was %d", len(after), len(before))
	}
	if _, err := os.Stat(filepath.Join(dir, "broken")); !os.IsNotExist(err) {
		t.Fatalf("records were moved aside: %v", err)
	}
	rep, _ := Verify(dir, nil, nil)
	if rep.OK || rep.Problem == nil {
		t.Fatalf("verify says OK over a flipped byte: %+v", rep)
	}

	// Read-only, what can be read stays queryable: the 80 events after
	// the damage too.
	ro, err := OpenReadOnly(dir)
	if err != nil {
		t.Fatalf("read-only open: %v", err)
	}
	if ro.Damage() == nil {
		t.Fatal("the read-only store does not report the damage")
	}
	res, err := ro.Query(wire.AuditQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var last string
	for _, e := range res.Events {
		last = e.Event.ID
	}
	if len(res.Events) < 300 || last != "ev-000379" {
		t.Fatalf("read-only query: %d events, last %q", len(res.Events), last)
	}
	if _, err := ro.Append(events(1, 400)); err == nil {
		t.Fatal("a read-only store took an append")
	}
}

// TestTornFinalFrameOnly: a final frame cut short (never acked: Append
// returns only after the fsync of a whole write) is the one thing cut, it
// is kept aside, and the cut itself goes on record in the chain, signed.
// A complete final frame with a bad CRC is damage, not a torn write.
func TestTornFinalFrameOnly(t *testing.T) {
	t.Run("incomplete", func(t *testing.T) {
		dir := t.TempDir()
		s := open(t, dir)
		s.Append(events(10, 0))
		s.Close()
		seg := filepath.Join(dir, "seg-00000001.log")
		f, _ := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
		f.Write([]byte("B\x00\x00\x01\x00garbage-half-written"))
		f.Close()
		s2 := open(t, dir)
		defer s2.Close()
		if len(s2.Cut()) != 1 {
			t.Fatalf("cut %v", s2.Cut())
		}
		res, _ := s2.Query(wire.AuditQuery{Kind: wire.KindAuditTailCut})
		if len(res.Events) != 1 || res.Events[0].Event.Detail["bytes"] == nil || res.Events[0].Event.Detail["sha256"] == nil {
			t.Fatalf("the cut is not on record: %+v", res.Events)
		}
		pub, _ := testKey()
		rep, _ := Verify(dir, pub, nil)
		if !rep.OK || rep.Records != 11 || rep.Checkpoints == 0 {
			t.Fatalf("verify %+v", rep)
		}
	})
	t.Run("complete with a bad CRC", func(t *testing.T) {
		dir := t.TempDir()
		s := open(t, dir)
		s.Append(events(10, 0))
		s.Append(events(10, 10))
		s.Close()
		seg := filepath.Join(dir, "seg-00000001.log")
		data, _ := os.ReadFile(seg)
		data[len(data)-3] ^= 0xff
		os.WriteFile(seg, data, 0o600)
		_, priv := testKey()
		var dmg *DamageError
		if _, err := Open(Options{Dir: dir, SigningKey: priv}); !errors.As(err, &dmg) {
			t.Fatalf("a complete final frame with a bad CRC was taken for a torn write: %v", err)
		}
	})
	t.Run("a length flipped in the middle", func(t *testing.T) {
		dir := t.TempDir()
		s := open(t, dir)
		for b := 0; b < 5; b++ {
			s.Append(events(10, b*10))
		}
		s.Close()
		seg := filepath.Join(dir, "seg-00000001.log")
		data, _ := os.ReadFile(seg)
		// The second block's length now claims more than the file holds.
		off := secondBlock(t, data)
		data[off+1] = 0x01
		os.WriteFile(seg, data, 0o600)
		_, priv := testKey()
		var dmg *DamageError
		if _, err := Open(Options{Dir: dir, SigningKey: priv}); !errors.As(err, &dmg) {
			t.Fatalf("valid frames after a bad length were cut as a torn tail: %v", err)
		}
	})
}

func secondBlock(t *testing.T, data []byte) int64 {
	t.Helper()
	n := 0
	var at int64 = -1
	readFrames(bytes.NewReader(data), int64(len(data)), func(fr frame) error {
		if fr.typ == frameBlock {
			n++
			if n == 2 {
				at = fr.offset
			}
		}
		return nil
	})
	if at < 0 {
		t.Fatal("no second block")
	}
	return at
}

// TestDeclaredLengthsChecked: a segment whose header declares a 1 GiB
// prev_hash in 30 bytes (a damaged or altered file) is read as damage,
// not a gigabyte allocated for what it claims.
func TestDeclaredLengthsChecked(t *testing.T) {
	dir := t.TempDir()
	// {"prev_hash": bin32 of 1 GiB}: map of one, key, bin32 header.
	payload := append([]byte{0x81, 0xa9}, "prev_hash"...)
	payload = append(payload, 0xc6, 0x40, 0x00, 0x00, 0x00)
	seg := appendFrame(nil, frameHeader, payload)
	if err := os.WriteFile(filepath.Join(dir, "seg-00000001.log"), seg, 0o600); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	s, err := OpenReadOnly(dir)
	runtime.ReadMemStats(&after)
	if err == nil {
		s.Close()
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Fatalf("opening it allocated %d MiB", grew>>20)
	}
}
