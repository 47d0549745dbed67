package wire

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
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

// ProfileHash is the content hash of a resolved profile: SHA-256 of its
// canonical msgpack (map keys sorted), in hex. Equal profiles hash alike
// whoever encodes them.
func ProfileHash(p *Profile) (string, error) {
	var buf bytes.Buffer
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(&buf)
	enc.SetCustomStructTag("json")
	enc.SetSortMapKeys(true)
	if err := enc.Encode(p); err != nil {
		return "", fmt.Errorf("hash the profile: %w", err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return hex.EncodeToString(sum[:]), nil
}

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
