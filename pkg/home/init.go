package home

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nats-io/nkeys"
)

// Init creates the directory layout, one nkey seed per role and the audit keys.
// It refuses to overwrite existing credentials unless force is set, because new
// keys lock every running daemon out of the bus.
func (h Home) Init(force bool) error {
	if !force {
		if _, err := os.Stat(h.CredsDir()); err == nil {
			return fmt.Errorf("%s already holds credentials: pass --force to replace them (running daemons will be locked out)", h.Dir)
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("check %s: %w", h.CredsDir(), err)
		}
	}
	for _, d := range []string{h.Dir, h.CredsDir(), h.KeysDir(), h.BusDir(), h.AuditDir(), h.RulesDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return fmt.Errorf("restrict %s: %w", d, err)
		}
	}
	for _, role := range Roles {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return fmt.Errorf("create key for %s: %w", role, err)
		}
		seed, err := kp.Seed()
		if err != nil {
			return fmt.Errorf("seed for %s: %w", role, err)
		}
		if err := writeSecret(h.Creds(role), append(seed, '\n')); err != nil {
			return err
		}
	}
	hmacKey := make([]byte, 32)
	if _, err := rand.Read(hmacKey); err != nil {
		return fmt.Errorf("audit hmac key: %w", err)
	}
	if err := writeSecret(h.HMACKey(), []byte(hex.EncodeToString(hmacKey)+"\n")); err != nil {
		return err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("checkpoint signing key: %w", err)
	}
	return writeSecret(h.SigningKey(), []byte(hex.EncodeToString(priv.Seed())+"\n"))
}

// writeSecret writes data to path with mode 0600 through a temporary file and
// a rename, so a crash never leaves a half-written key.
func writeSecret(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// PublicKeys reads every role's seed and returns role → public nkey. A missing
// or unreadable seed is an error: busd must not start with a partial user list.
func (h Home) PublicKeys() (map[string]string, error) {
	keys := make(map[string]string, len(Roles))
	for _, role := range Roles {
		kp, err := h.keyPair(role)
		if err != nil {
			return nil, err
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("public key of %s: %w", role, err)
		}
		keys[role] = pub
	}
	return keys, nil
}

func (h Home) keyPair(role string) (nkeys.KeyPair, error) {
	data, err := os.ReadFile(h.Creds(role))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no key for %s at %s: run `moat init` first", role, h.Creds(role))
	}
	if err != nil {
		return nil, fmt.Errorf("read key for %s: %w", role, err)
	}
	kp, err := nkeys.ParseDecoratedNKey(data)
	if err != nil {
		return nil, fmt.Errorf("key for %s at %s is not an nkey seed: %w; rerun `moat init --force`", role, h.Creds(role), err)
	}
	return kp, nil
}
