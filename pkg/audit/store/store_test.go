package store

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/wire"
	"github.com/vmihailenco/msgpack/v5"
)

func testKey() (ed25519.PublicKey, ed25519.PrivateKey) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	return priv.Public().(ed25519.PublicKey), priv
}

func events(n int, from int) []*wire.AuditEvent {
	out := make([]*wire.AuditEvent, n)
	for i := range out {
		k := from + i
		out[i] = &wire.AuditEvent{ID: fmt.Sprintf("ev-%06d", k), TS: time.Unix(1700000000+int64(k), 0).UTC(), Source: "sandboxd",
			Instance: "i1", Seq: uint64(k + 1), Kind: []string{"run.decision", "run.exit"}[k%2], SessionID: fmt.Sprintf("s%d", k%3),
			RequestID: fmt.Sprintf("r%d", k/2), Profile: "workspace-write", Argv: []string{"go", "test", fmt.Sprintf("./pkg/%d", k%7)},
			Cwd: "~/proj", Verdict: []string{"allow", "deny"}[k%5/4], Reasons: []wire.Reason{{Rule: "default.sandboxed", Message: "no rule names go"}}}
	}
	return out
}

func open(t testing.TB, dir string, opts ...func(*Options)) *Store {
	t.Helper()
	_, priv := testKey()
	o := Options{Dir: dir, SigningKey: priv, CheckpointEvery: 50}
	for _, f := range opts {
		f(&o)
	}
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAppendQueryReopen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	var ckpts []Checkpoint
	s.opts.OnCheckpoint = func(c Checkpoint) { ckpts = append(ckpts, c) }
	for b := 0; b < 10; b++ {
		n, err := s.Append(events(30, b*30))
		if err != nil || n != 30 {
			t.Fatalf("append: %d %v", n, err)
		}
	}
	if n, _ := s.Append(events(30, 0)); n != 0 {
		t.Fatalf("duplicates stored: %d", n)
	}
	if len(ckpts) == 0 || !ckpts[0].Verify(s.opts.SigningKey.Public().(ed25519.PublicKey)) {
		t.Fatalf("checkpoints %d", len(ckpts))
	}
	res, err := s.Query(wire.AuditQuery{Kind: "run.exit", SessionID: "s1", Limit: 10})
	if err != nil || len(res.Events) != 10 || res.Next == 0 {
		t.Fatalf("query: %v %+v", err, res)
	}
	for _, e := range res.Events {
		if e.Event.Kind != "run.exit" || e.Event.SessionID != "s1" {
			t.Fatalf("filter let through %+v", e.Event)
		}
	}
	all := 0
	for cur := uint64(0); ; {
		page, err := s.Query(wire.AuditQuery{Kind: "run.exit", SessionID: "s1", Limit: 7, Cursor: cur})
		if err != nil {
			t.Fatal(err)
		}
		all += len(page.Events)
		if page.Next == 0 {
			break
		}
		cur = page.Next
	}
	if all != 50 { // 300 events, half exits, a third of those in s1
		t.Fatalf("paged through %d events, want 50", all)
	}
	for q, want := range map[*wire.AuditQuery]int{
		{Text: "./pkg/3"}: 43, {Verdict: "deny"}: 60, {RequestID: "r10"}: 2,
		{Since: time.Unix(1700000100, 0), Until: time.Unix(1700000110, 0)}: 10,
	} {
		q.Limit = 1000
		if r, _ := s.Query(*q); len(r.Events) != want {
			t.Errorf("%+v: %d events, want %d", *q, len(r.Events), want)
		}
	}
	st := s.Stats()
	s.Close()
	s2 := open(t, dir)
	defer s2.Close()
	if st2 := s2.Stats(); st2.Records != 300 || st2.LastSeq != st.LastSeq || st2.Head != st.Head {
		t.Fatalf("after reopen %+v, before %+v", st2, st)
	}
	if n, _ := s2.Append(events(30, 270)); n != 0 {
		t.Fatal("ids forgotten across a reopen")
	}
	pub, _ := testKey()
	rep, err := Verify(dir, pub, nil)
	if err != nil || !rep.OK || rep.Records != 300 || rep.Checkpoints == 0 {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}

func TestRotationRetentionAndGaps(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Now()}
	s := open(t, dir, withClock(c), func(o *Options) { o.SegmentBytes = 4 << 10; o.RetainBytes = 24 << 10 })
	for b := 0; b < 40; b++ {
		if _, err := s.Append(events(20, b*20)); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	if st.Segments < 3 || st.DiskBytes > 32<<10 {
		t.Fatalf("rotation/retention: %+v", st)
	}
	idx, _ := filepath.Glob(filepath.Join(dir, "*.idx"))
	if len(idx) == 0 {
		t.Fatal("sealed segments have no index")
	}
	// A source whose seqs skip is reported once it moved past the horizon;
	// arriving out of order is not a gap.
	late := events(3, 5000)
	late[0].Seq, late[1].Seq, late[2].Seq = 1000, 999, 998 // out of order, but complete
	late[2].Kind = "run.exit"                              // so no run stays open
	s.Append(late)
	skip := events(1, 6000)
	skip[0].Seq = 1200 // 1001..1199 never come
	skip[0].Kind = "run.exit"
	s.Append(skip)
	if r, _ := s.Query(wire.AuditQuery{Kind: "audit.gap", Limit: 10}); len(r.Events) != 0 {
		t.Fatalf("a gap reported before the horizon: %+v", r.Events)
	}
	far := events(1, 7000)
	far[0].Seq = 1200 + GapHorizon + 10
	far[0].Kind = "run.exit"
	s.Append(far)
	if r, _ := s.Query(wire.AuditQuery{Kind: "audit.gap", Limit: 10}); len(r.Events) != 0 {
		t.Fatalf("a gap reported before the redelivery wait: %+v", r.Events)
	}
	c.add(DefaultGapWait)
	later := events(1, 7001)
	later[0].Seq = far[0].Seq + 1
	s.Append(later)
	r, _ := s.Query(wire.AuditQuery{Kind: "audit.gap", Limit: 10})
	if len(r.Events) != 3 || num(r.Events[0].Event.Detail["missing_from"]) != 801 || num(r.Events[1].Event.Detail["missing_from"]) != 1001 {
		t.Fatalf("gap events %+v", r.Events)
	}
	s.Close()
	pub, _ := testKey()
	if rep, err := Verify(dir, pub, nil); err != nil || !rep.OK || rep.FirstSeq == 1 {
		t.Fatalf("verify after retention: %v %+v", err, rep)
	}
}

// TestVerifyFindsTampering: a flipped byte, a truncation, a removed record
// and a forged checkpoint are each found and named.
func TestVerifyFindsTampering(t *testing.T) {
	pub, _ := testKey()
	build := func(t *testing.T) (string, string) {
		dir := t.TempDir()
		s := open(t, dir)
		for b := 0; b < 5; b++ {
			s.Append(events(20, b*20))
		}
		s.Close()
		return dir, filepath.Join(dir, "seg-00000001.log")
	}
	t.Run("flipped byte", func(t *testing.T) {
		dir, seg := build(t)
		data, _ := os.ReadFile(seg)
		data[len(data)/2] ^= 0x20
		os.WriteFile(seg, data, 0o600)
		rep, _ := Verify(dir, pub, nil)
		if rep.OK || rep.Problem == nil || rep.Problem.Offset == 0 || !strings.Contains(rep.Problem.Reason, "CRC") {
			t.Fatalf("%+v %+v", rep, rep.Problem)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		dir, seg := build(t)
		fi, _ := os.Stat(seg)
		os.Truncate(seg, fi.Size()-7)
		rep, _ := Verify(dir, pub, nil)
		if rep.OK || rep.Problem == nil || !strings.Contains(rep.Problem.Reason, "past the end") {
			t.Fatalf("%+v", rep.Problem)
		}
	})
	t.Run("record removed, CRC recomputed", func(t *testing.T) {
		dir, seg := build(t)
		rewriteBlocks(t, seg, func(recs []Record) []Record {
			if len(recs) > 3 && recs[0].Seq == 21 {
				return append(recs[:2:2], recs[3:]...)
			}
			return recs
		})
		rep, _ := Verify(dir, pub, nil)
		if rep.OK || rep.Problem == nil || rep.Problem.Seq != 24 || !strings.Contains(rep.Problem.Reason, "missing") {
			t.Fatalf("%+v", rep.Problem)
		}
	})
	t.Run("record altered, CRC recomputed", func(t *testing.T) {
		dir, seg := build(t)
		rewriteBlocks(t, seg, func(recs []Record) []Record {
			if recs[0].Seq == 41 {
				recs[5].Event = bytes.Replace(recs[5].Event, []byte("./pkg"), []byte("./pwn"), 1)
			}
			return recs
		})
		rep, _ := Verify(dir, pub, nil)
		if rep.OK || rep.Problem == nil || rep.Problem.Seq != 46 || !strings.Contains(rep.Problem.Reason, "hash chain") {
			t.Fatalf("%+v", rep.Problem)
		}
	})
	t.Run("checkpoint by another key", func(t *testing.T) {
		dir, _ := build(t)
		other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
		rep, _ := Verify(dir, other.Public().(ed25519.PublicKey), nil)
		if rep.OK || !strings.Contains(rep.Problem.Reason, "signature") {
			t.Fatalf("%+v", rep.Problem)
		}
	})
}

// rewriteBlocks re-encodes every block of seg through fn, with valid CRCs:
// what someone who can write the disk, but not sign, could do.
func rewriteBlocks(t *testing.T, seg string, fn func([]Record) []Record) {
	t.Helper()
	data, _ := os.ReadFile(seg)
	var out []byte
	err := readFrames(bytes.NewReader(data), int64(len(data)), func(fr frame) error {
		if fr.typ != frameBlock {
			out = appendFrame(out, fr.typ, fr.payload)
			return nil
		}
		recs, err := decodeBlock(fr.payload)
		if err != nil {
			return err
		}
		b, _ := encodeBlock(fn(recs))
		out = appendFrame(out, frameBlock, b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(seg, out, 0o600)
}

func TestExportRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	in := events(120, 0)
	s.Append(in)
	var buf bytes.Buffer
	if err := s.Export(&buf); err != nil {
		t.Fatal(err)
	}
	s.Close()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 120 {
		t.Fatalf("%d lines", len(lines))
	}
	for i, l := range lines {
		var ev wire.AuditEvent
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatal(err)
		}
		a, _ := msgpack.Marshal(&ev)
		b, _ := msgpack.Marshal(in[i])
		if !bytes.Equal(a, b) {
			t.Fatalf("line %d: %s", i, l)
		}
	}
}

// FuzzSegmentReader: corrupt segments give a clear error, never a panic.
func FuzzSegmentReader(f *testing.F) {
	dir := f.TempDir()
	s := open(f, dir)
	s.Append(events(5, 0))
	s.Close()
	good, _ := os.ReadFile(filepath.Join(dir, "seg-00000001.log"))
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte("B\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		err := readFrames(bytes.NewReader(data), int64(len(data)), func(fr frame) error {
			if fr.typ == frameBlock {
				_, err := decodeBlock(fr.payload)
				return err
			}
			return nil
		})
		if err != nil && !strings.Contains(err.Error(), "offset") && !strings.Contains(err.Error(), "record") && !strings.Contains(err.Error(), "decompress") {
			t.Fatalf("unclear error: %v", err)
		}
		d := t.TempDir()
		os.WriteFile(filepath.Join(d, "seg-00000001.log"), data, 0o600)
		if rep, err := Verify(d, nil, nil); err == nil && !rep.OK && rep.Problem == nil {
			t.Fatal("verify failed without naming a problem")
		}
	})
}

func BenchmarkStoreAppend(b *testing.B) {
	s := open(b, b.TempDir(), func(o *Options) { o.CheckpointEvery = 10000 })
	defer s.Close()
	const batch = 512
	pool := events(batch, 0)
	ids := make([]string, b.N+batch)
	for i := range ids {
		ids[i] = fmt.Sprintf("ev-%09d", i)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		for k, ev := range pool {
			ev.ID, ev.Seq = ids[i+k], uint64(i+k+1)
		}
		if _, err := s.Append(pool); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	st := s.Stats()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(st.Ratio, "json/disk")
	b.ReportMetric(float64(st.DiskBytes)/float64(st.Records), "bytes/event")
}
