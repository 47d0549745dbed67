// Package home holds the layout of MOAT_HOME, the directory where moat keeps
// its state: the bus's JetStream store, the audit segments, the nkey seeds of
// every component, the audit keys, policy rules and custom profiles.
//
//	MOAT_HOME/
//	  creds/<role>.nk   one nkey seed per component, mode 0600
//	  keys/             audit HMAC key and checkpoint signing key, mode 0600
//	  bus/              JetStream store (busd)
//	  audit/            audit segments (auditd)
//	  rules/*.rules     policy rules (policyd)
//	  profiles.toml     custom profiles (profiled)
//
// Nothing under MOAT_HOME is readable from inside a sandbox: profiled puts the
// whole directory on every profile's read-deny list.
//
// Where MOAT_HOME is: the MOAT_HOME variable when set, otherwise one
// well-known place per user, $XDG_STATE_HOME/moat or ~/.local/state/moat
// ([DefaultDir]). It never depends on the current directory, so moat finds
// its keys wherever it runs. A system stack sets MOAT_HOME=/var/lib/moat.
package home

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
)

// Roles are the identities busd admits, one nkey each.
const (
	RoleProfiled = "profiled"
	RolePolicyd  = "policyd"
	RoleSandboxd = "sandboxd"
	RoleAuditd   = "auditd"
	RoleBenchd   = "benchd"
	RoleClient   = "client"
	RoleApprover = "approver"
	RoleAdmin    = "admin"
)

// Roles lists every role moat init writes a key for.
var Roles = []string{RoleProfiled, RolePolicyd, RoleSandboxd, RoleAuditd, RoleBenchd, RoleClient, RoleApprover, RoleAdmin}

// Env names.
const (
	EnvHome  = "MOAT_HOME"
	EnvBus   = "MOAT_BUS"
	EnvCreds = "MOAT_CREDS"
)

// DefaultDir is MOAT_HOME when the variable is unset: $XDG_STATE_HOME/moat
// when XDG_STATE_HOME is an absolute path, else ~/.local/state/moat of the
// user running the process.
func DefaultDir() (string, error) {
	if x := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(x) {
		return filepath.Join(x, "moat"), nil
	}
	dir, err := os.UserHomeDir()
	if err != nil || dir == "" {
		u, uerr := user.Current()
		if uerr != nil || u.HomeDir == "" {
			return "", fmt.Errorf("no home directory to keep moat's state in (%v): set MOAT_HOME", err)
		}
		dir = u.HomeDir
	}
	return filepath.Join(dir, ".local", "state", "moat"), nil
}

// Home is a MOAT_HOME directory. Its zero value is not useful; use [FromEnv] or [New].
type Home struct {
	Dir string // absolute
}

// New returns the Home at dir, made absolute.
func New(dir string) (Home, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Home{}, err
	}
	return Home{Dir: abs}, nil
}

// FromEnv returns the Home named by MOAT_HOME, or the per-user [DefaultDir].
func FromEnv() (Home, error) {
	dir := os.Getenv(EnvHome)
	if dir == "" {
		d, err := DefaultDir()
		if err != nil {
			return Home{}, err
		}
		dir = d
	}
	return New(dir)
}

func (h Home) CredsDir() string         { return filepath.Join(h.Dir, "creds") }
func (h Home) Creds(role string) string { return filepath.Join(h.Dir, "creds", role+".nk") }
func (h Home) KeysDir() string          { return filepath.Join(h.Dir, "keys") }
func (h Home) HMACKey() string          { return filepath.Join(h.Dir, "keys", "audit-hmac.key") }
func (h Home) SigningKey() string       { return filepath.Join(h.Dir, "keys", "checkpoint.ed25519") }
func (h Home) BusDir() string           { return filepath.Join(h.Dir, "bus") }
func (h Home) AuditDir() string         { return filepath.Join(h.Dir, "audit") }
func (h Home) RulesDir() string         { return filepath.Join(h.Dir, "rules") }
func (h Home) ProfilesFile() string     { return filepath.Join(h.Dir, "profiles.toml") }
func (h Home) QuarantineDir() string    { return filepath.Join(h.Dir, "quarantine") }
