package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// A segment is a sequence of frames:
//
//	type (1 byte) | payload length (4, big endian) | CRC32C of type+payload (4) | payload
//
// Frame types: a segment header first, then blocks of records, with
// checkpoints between them.
const (
	frameHeader     byte = 'H'
	frameBlock      byte = 'B'
	frameCheckpoint byte = 'C'
	frameOverhead        = 9
	maxFramePayload      = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendFrame appends one frame to buf.
func appendFrame(buf []byte, typ byte, payload []byte) []byte {
	var hdr [frameOverhead]byte
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:5], uint32(len(payload)))
	crc := crc32.Update(crc32.Checksum([]byte{typ}, castagnoli), castagnoli, payload)
	binary.BigEndian.PutUint32(hdr[5:9], crc)
	return append(append(buf, hdr[:]...), payload...)
}

// frame is one frame read back, at its offset in the segment.
type frame struct {
	typ     byte
	offset  int64
	payload []byte
}

// errTorn marks a frame cut short or damaged.
var errTorn = errors.New("torn or corrupt frame")

// frameError is a bad frame at an offset. incomplete: the file ends
// inside it (a write that never finished, or a length that was altered);
// next: where the following frame starts when the frame's length is
// intact and only its contents are bad (0: unknown).
type frameError struct {
	off        int64
	msg        string
	incomplete bool
	next       int64
}

func (e *frameError) Error() string { return fmt.Sprintf("offset %d: %v: %s", e.off, errTorn, e.msg) }
func (e *frameError) Unwrap() error { return errTorn }

func torn(off int64, format string, args ...any) *frameError {
	return &frameError{off: off, msg: fmt.Sprintf(format, args...)}
}

// readFrames reads every frame of a segment, calling fn for each; it stops
// at the first bad one with an error naming its offset.
func readFrames(r io.ReaderAt, size int64, fn func(f frame) error) error {
	return readFramesFrom(r, 0, size, fn)
}

// readFramesFrom is readFrames from offset from on.
func readFramesFrom(r io.ReaderAt, from, size int64, fn func(f frame) error) error {
	var hdr [frameOverhead]byte
	for off := from; off < size; {
		if size-off < frameOverhead {
			fe := torn(off, "%d bytes left, a frame header needs %d", size-off, frameOverhead)
			fe.incomplete = true
			return fe
		}
		if _, err := r.ReadAt(hdr[:], off); err != nil {
			return fmt.Errorf("offset %d: read: %w", off, err)
		}
		typ := hdr[0]
		n := int64(binary.BigEndian.Uint32(hdr[1:5]))
		if typ != frameHeader && typ != frameBlock && typ != frameCheckpoint {
			return torn(off, "unknown frame type %q", typ)
		}
		if n > maxFramePayload || off+frameOverhead+n > size {
			fe := torn(off, "a frame of %d bytes runs past the end (%d)", n, size)
			fe.incomplete = true
			return fe
		}
		payload := make([]byte, n)
		if _, err := r.ReadAt(payload, off+frameOverhead); err != nil {
			return fmt.Errorf("offset %d: read: %w", off, err)
		}
		crc := crc32.Update(crc32.Checksum([]byte{typ}, castagnoli), castagnoli, payload)
		if crc != binary.BigEndian.Uint32(hdr[5:9]) {
			fe := torn(off, "CRC mismatch")
			fe.next = off + frameOverhead + n
			return fe
		}
		if err := fn(frame{typ: typ, offset: off, payload: payload}); err != nil {
			return err
		}
		off += frameOverhead + n
	}
	return nil
}
