package store

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/vmihailenco/msgpack/v5"
)

// Record is one stored event: its place in the store, its link in the hash
// chain, and the sanitized event as msgpack.
type Record struct {
	Seq   uint64
	Hash  []byte // sha256(previous hash | seq | event)
	Event []byte
}

// chain computes a record's hash from the previous one.
func chain(prev []byte, seq uint64, event []byte) []byte {
	h := sha256.New()
	h.Write(prev)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	h.Write(b[:])
	h.Write(event)
	return h.Sum(nil)
}

// segmentHeader opens every segment: where its chain starts.
type segmentHeader struct {
	FirstSeq uint64 `msgpack:"first_seq"`
	PrevHash []byte `msgpack:"prev_hash"`
	Created  int64  `msgpack:"created"`
}

// Checkpoint is a signed statement of the chain: after Size records the
// chain's hash is Root. Published on moat.audit.checkpoint, it bounds what
// someone with root on the box can rewrite unnoticed once it has left.
type Checkpoint struct {
	Origin string `msgpack:"origin" json:"origin"`
	Size   uint64 `msgpack:"size" json:"size"`
	Root   []byte `msgpack:"root" json:"root"`
	TS     int64  `msgpack:"ts" json:"ts"`
	Sig    []byte `msgpack:"sig" json:"sig"`
}

// CheckpointOrigin names moat's audit log in its checkpoints.
const CheckpointOrigin = "moat-audit"

// signed is the text a checkpoint signs (tlog-checkpoint style).
func (c *Checkpoint) signed() []byte {
	return []byte(fmt.Sprintf("%s\n%d\n%s\n", c.Origin, c.Size, hex.EncodeToString(c.Root)))
}

// Verify checks the signature.
func (c *Checkpoint) Verify(pub ed25519.PublicKey) bool {
	return len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, c.signed(), c.Sig)
}

var (
	encoders = sync.Pool{New: func() any {
		e, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
		return e
	}}
	decoder = sync.OnceValue(func() *zstd.Decoder {
		// Blocks are small: a frame that claims more is corrupt, not a reason to allocate.
		d, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxFramePayload*4), zstd.WithDecoderMaxWindow(8<<20))
		return d
	})
)

// encodeBlock compresses records, each written as
// uvarint(seq) | 32-byte hash | uvarint(len) | event msgpack.
func encodeBlock(recs []Record) ([]byte, error) {
	raw := make([]byte, 0, 256*len(recs))
	for i := range recs {
		r := &recs[i]
		if len(r.Hash) != sha256.Size {
			return nil, fmt.Errorf("record %d: hash of %d bytes", r.Seq, len(r.Hash))
		}
		raw = binary.AppendUvarint(raw, r.Seq)
		raw = append(raw, r.Hash...)
		raw = binary.AppendUvarint(raw, uint64(len(r.Event)))
		raw = append(raw, r.Event...)
	}
	enc := encoders.Get().(*zstd.Encoder)
	defer encoders.Put(enc)
	return enc.EncodeAll(raw, nil), nil
}

// decodeBlock reverses encodeBlock.
func decodeBlock(payload []byte) ([]Record, error) {
	raw, err := decoder().DecodeAll(payload, nil)
	if err != nil {
		return nil, fmt.Errorf("decompress block: %w", err)
	}
	var recs []Record
	for len(raw) > 0 {
		seq, k := binary.Uvarint(raw)
		if k <= 0 || len(raw)-k < sha256.Size {
			return nil, fmt.Errorf("record %d of the block: bad header", len(recs))
		}
		raw = raw[k:]
		hash := raw[:sha256.Size:sha256.Size]
		raw = raw[sha256.Size:]
		n, k := binary.Uvarint(raw)
		if k <= 0 || n > uint64(len(raw)-k) {
			return nil, fmt.Errorf("record %d of the block: bad length", len(recs))
		}
		recs = append(recs, Record{Seq: seq, Hash: hash, Event: raw[k : k+int(n) : k+int(n)]})
		raw = raw[k+int(n):]
	}
	return recs, nil
}

// unmarshal decodes msgpack read back from the store, its declared lengths
// checked against the bytes present first (wire.CheckMsgpack): a damaged
// or altered segment is an error, never an allocation of what it claims.
func unmarshal(b []byte, v any) error {
	if err := wire.CheckMsgpack(b); err != nil {
		return err
	}
	return msgpack.Unmarshal(b, v)
}
