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
package home

import (
	"os"
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

// DefaultDir is MOAT_HOME for the local stack.
const DefaultDir = ".moat"

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

// FromEnv returns the Home named by MOAT_HOME, or ./.moat.
func FromEnv() (Home, error) {
	dir := os.Getenv(EnvHome)
	if dir == "" {
		dir = DefaultDir
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
