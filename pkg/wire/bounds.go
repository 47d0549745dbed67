package wire

import (
	"encoding/binary"
	"fmt"
)

// MaxDepth bounds how deeply maps and arrays may nest in a body. moat's
// messages nest a few levels; the bound keeps a hostile body from making
// a decoder recurse once per byte.
const MaxDepth = 32

// CheckMsgpack walks a msgpack body before it is decoded, without
// allocating (Decode does it; call it before any other msgpack decoding of
// bytes from outside the process, e.g. a store's frames): every length it declares (a string's or a binary's bytes, an
// array's elements, a map's entries) must fit in the bytes that follow,
// nesting stays within MaxDepth, and the body is one value with nothing
// after it. The decoder pre-sizes buffers, slices and maps from those
// lengths, so once they are checked against the bytes actually present,
// what it allocates is bounded by the body's size (itself bounded by the
// caller's limit) — 13 bytes can no longer declare a 2 GiB stdin.
func CheckMsgpack(b []byte) error {
	w := walker{b: b}
	if err := w.value(0); err != nil {
		return err
	}
	if rest := len(b) - w.off; rest != 0 {
		return fmt.Errorf("%d unexpected bytes after the object", rest)
	}
	return nil
}

type walker struct {
	b   []byte
	off int
}

func (w *walker) left() int { return len(w.b) - w.off }

// take skips n bytes that must be present.
func (w *walker) take(n uint64, what string) error {
	if n > uint64(w.left()) {
		return fmt.Errorf("%s at offset %d declares %d bytes but only %d follow", what, w.off, n, w.left())
	}
	w.off += int(n)
	return nil
}

// length reads a big-endian length of size bytes.
func (w *walker) length(size int) (uint64, error) {
	if w.left() < size {
		return 0, fmt.Errorf("length at offset %d is cut short", w.off)
	}
	p := w.b[w.off : w.off+size]
	w.off += size
	switch size {
	case 1:
		return uint64(p[0]), nil
	case 2:
		return uint64(binary.BigEndian.Uint16(p)), nil
	}
	return uint64(binary.BigEndian.Uint32(p)), nil
}

// sized is a string or binary: its length, then that many bytes.
func (w *walker) sized(size int, what string) error {
	n, err := w.length(size)
	if err != nil {
		return err
	}
	return w.take(n, what)
}

// ext is an extension: its length, a type byte, then the data.
func (w *walker) ext(size int) error {
	n, err := w.length(size)
	if err != nil {
		return err
	}
	return w.take(n+1, "extension")
}

// container is an array of n values or a map of n pairs (per = 2). Each
// value takes at least one byte, so n·per must fit before any is read.
func (w *walker) container(n uint64, per uint64, depth int, what string) error {
	if depth >= MaxDepth {
		return fmt.Errorf("%s at offset %d nests deeper than %d levels", what, w.off, MaxDepth)
	}
	if n*per > uint64(w.left()) {
		return fmt.Errorf("%s at offset %d declares %d entries but only %d bytes follow", what, w.off, n, w.left())
	}
	for i := uint64(0); i < n*per; i++ {
		if err := w.value(depth + 1); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) value(depth int) error {
	if w.left() == 0 {
		return fmt.Errorf("the body ends at offset %d where a value was expected", w.off)
	}
	c := w.b[w.off]
	w.off++
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3: // fixint, nil, bool
		return nil
	case c <= 0x8f:
		return w.container(uint64(c&0x0f), 2, depth, "map")
	case c <= 0x9f:
		return w.container(uint64(c&0x0f), 1, depth, "array")
	case c <= 0xbf:
		return w.take(uint64(c&0x1f), "string")
	}
	switch c {
	case 0xc4, 0xc5, 0xc6: // bin 8/16/32
		return w.sized(1<<(c-0xc4), "binary")
	case 0xc7, 0xc8, 0xc9: // ext 8/16/32
		return w.ext(1 << (c - 0xc7))
	case 0xca, 0xce, 0xd2: // float32, uint32, int32
		return w.take(4, "number")
	case 0xcb, 0xcf, 0xd3: // float64, uint64, int64
		return w.take(8, "number")
	case 0xcc, 0xd0:
		return w.take(1, "number")
	case 0xcd, 0xd1:
		return w.take(2, "number")
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1/2/4/8/16 and the type byte
		return w.take(1+1<<(c-0xd4), "extension")
	case 0xd9, 0xda, 0xdb: // str 8/16/32
		return w.sized(1<<(c-0xd9), "string")
	case 0xdc, 0xdd: // array 16/32
		n, err := w.length(2 << (c - 0xdc))
		if err != nil {
			return err
		}
		return w.container(n, 1, depth, "array")
	case 0xde, 0xdf: // map 16/32
		n, err := w.length(2 << (c - 0xde))
		if err != nil {
			return err
		}
		return w.container(n, 2, depth, "map")
	}
	return fmt.Errorf("byte 0x%02x at offset %d is not msgpack", c, w.off-1)
}
