package wire

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// Resolved profiles by content hash (docs/bus.md, "Profiles by hash"). A
// caller that checks many commands under the same resolved profile sends it
// whole once, with HeaderProfileHash, and policyd keeps it under the hash it
// computes itself (a caller's claim is never trusted) and says so with
// HeaderProfileCached; from then on the caller sends only
// CheckRequest.ProfileHash. A policyd that does not hold that hash answers
// 404 and the caller sends the profile whole again. A check with a whole
// profile and no header is judged as ever, and kept by nobody.
const (
	HeaderProfileHash   = "Moat-Profile-Hash"   // request: keep this profile; its hash
	HeaderProfileCached = "Moat-Profile-Cached" // answer: kept under this hash
)

// ProfileHashLen is the length of a profile hash: SHA-256 in hex.
const ProfileHashLen = 2 * sha256.Size

// ProfileHash is the content hash of a resolved profile: SHA-256, in hex,
// of a canonical serialisation of every field, found by reflection so that a
// field added to Profile is covered without anybody remembering to: each
// string and list is length-prefixed, numbers are 8 bytes, maps go in key
// order. Equal profiles hash alike whoever builds them; profiles that differ
// in any field hash apart.
func ProfileHash(p *Profile) (string, error) {
	bp := hashBufs.Get().(*[]byte)
	defer hashBufs.Put(bp)
	b, err := appendCanonical((*bp)[:0], reflect.ValueOf(p).Elem())
	*bp = b
	if err != nil {
		return "", fmt.Errorf("hash the profile: %w", err)
	}
	if h, ok := recentHashes.lookup(b); ok {
		return h, nil
	}
	sum := sha256.Sum256(b)
	h := hex.EncodeToString(sum[:])
	recentHashes.add(b, h)
	return h, nil
}

var hashBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// recentHashes remembers the last few profiles hashed, by their whole
// canonical bytes: a caller checks many commands under one profile, and
// comparing ~3 KB costs a fraction of hashing them again (SHA-256 was more
// than half of ProfileHash, ~4% of a check's CPU under load). Only bytes
// equal to the ones hashed get the remembered hash, so a profile changed
// in place between two checks is hashed afresh.
var recentHashes hashMemo

const hashMemoSize = 4

type hashMemo struct {
	mu    sync.Mutex
	canon [hashMemoSize][]byte
	hash  [hashMemoSize]string
	next  int // the entry replaced next
}

func (m *hashMemo) lookup(canon []byte) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.canon {
		if m.hash[i] != "" && bytes.Equal(m.canon[i], canon) {
			return m.hash[i], true
		}
	}
	return "", false
}

func (m *hashMemo) add(canon []byte, h string) {
	if len(canon) > maxMemoCanon {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	i := m.next
	m.canon[i], m.hash[i] = append(m.canon[i][:0], canon...), h
	m.next = (i + 1) % hashMemoSize
}

// maxMemoCanon keeps a huge profile out of the memo: it would stay in
// memory for nothing but its rare next check.
const maxMemoCanon = 64 << 10

// appendCanonical appends v's canonical bytes to b. Kinds a profile does
// not hold are an error (and the caller sends the profile whole).
func appendCanonical(b []byte, v reflect.Value) ([]byte, error) {
	var err error
	switch v.Kind() {
	case reflect.String:
		b = binary.BigEndian.AppendUint64(b, uint64(v.Len()))
		b = append(b, v.String()...)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		b = binary.BigEndian.AppendUint64(b, uint64(v.Int()))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		b = binary.BigEndian.AppendUint64(b, v.Uint())
	case reflect.Bool:
		if v.Bool() {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			b = append(b, 0) // nil and empty differ: encodings tell them apart too
			break
		}
		b = binary.BigEndian.AppendUint64(append(b, 1), uint64(v.Len()))
		for i := range v.Len() {
			if b, err = appendCanonical(b, v.Index(i)); err != nil {
				return b, err
			}
		}
	case reflect.Struct:
		b = binary.BigEndian.AppendUint64(b, uint64(v.NumField()))
		for i := range v.NumField() {
			if b, err = appendCanonical(b, v.Field(i)); err != nil {
				return b, err
			}
		}
	case reflect.Map:
		if v.IsNil() {
			b = append(b, 0)
			break
		}
		if v.Type().Key().Kind() != reflect.String {
			return b, fmt.Errorf("a map keyed by %s", v.Type().Key())
		}
		if m, ok := v.Interface().(map[string]string); ok {
			return appendStringMap(b, m), nil // the same bytes, without reflection's copies
		}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(x, y reflect.Value) int { return strings.Compare(x.String(), y.String()) })
		b = binary.BigEndian.AppendUint64(append(b, 1), uint64(len(keys)))
		for _, k := range keys {
			if b, err = appendCanonical(b, k); err != nil {
				return b, err
			}
			if b, err = appendCanonical(b, v.MapIndex(k)); err != nil {
				return b, err
			}
		}
	case reflect.Pointer:
		if v.IsNil() {
			b = append(b, 0)
			break
		}
		return appendCanonical(append(b, 1), v.Elem())
	default:
		return b, fmt.Errorf("a field of kind %s", v.Kind())
	}
	return b, nil
}

// appendStringMap is appendCanonical of a non-nil map[string]string.
func appendStringMap(b []byte, m map[string]string) []byte {
	kp := hashKeys.Get().(*[]string)
	defer hashKeys.Put(kp)
	keys := (*kp)[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	defer func() { clear(keys); *kp = keys[:0] }() // the pool keeps no strings alive
	b = binary.BigEndian.AppendUint64(append(b, 1), uint64(len(keys)))
	for _, k := range keys {
		b = binary.BigEndian.AppendUint64(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.BigEndian.AppendUint64(b, uint64(len(m[k])))
		b = append(b, m[k]...)
	}
	return b
}

var hashKeys = sync.Pool{New: func() any { k := make([]string, 0, 64); return &k }}

// checkProfileHash checks a profile_hash field: empty, or ProfileHashLen
// lowercase hex digits, and then the only profile the request names.
func checkProfileHash(r *CheckRequest) error {
	h := r.ProfileHash
	if h == "" {
		return nil
	}
	if len(h) != ProfileHashLen {
		return Errorf(CodeBadRequest, "profile_hash is %d characters: send the %d hex digits of wire.ProfileHash, or leave it out", len(h), ProfileHashLen)
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return Errorf(CodeBadRequest, "profile_hash has %q at %d: send lowercase hex digits", c, i)
		}
	}
	if r.Profile.Name != "" || r.Profile.Resolved != nil {
		return Errorf(CodeBadRequest, "profile and profile_hash both given: send one")
	}
	return nil
}
