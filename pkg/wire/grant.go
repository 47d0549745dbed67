package wire

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Grants: an approval answered for more than once (docs/policy.md,
// "Grants"). policyd keeps each grant as one key of the JetStream key-value
// bucket GrantsBucket (the key is the grant's ID), so every policyd copy sees
// the same grants and they outlive restarts. A grant covers only prompts —
// never a rule's deny — of its workspace and profile (and session, for a
// session grant) whose argv equals Argv, or starts with it when Prefix.
const (
	GrantsBucket = "MOAT_GRANTS"
	// SubjectGrants lists the grants in force; SubjectRevoke ends one. Only
	// the approver and admin keys may publish either.
	SubjectGrants = "moat.policy.grants"
	SubjectRevoke = "moat.policy.revoke"
)

// What an approval answer grants (ApprovalAnswer.For).
const (
	GrantOnce    = "once"    // this command, this time (the default)
	GrantSession = "session" // every match in the asking session, until GrantSessionMax
	GrantRule    = "rule"    // every match in the workspace and profile, until revoked
	GrantRun     = "run"     // a network ask only: that destination for the rest of the asking run
	// A duration ("5m", "2h") grants until then; "3uses" grants that many uses.
	GrantUses = "uses" // the GrantSpec kind of "3uses"

	// GrantSessionMax bounds a session grant: sessions have no end on the bus.
	GrantSessionMax = 24 * time.Hour
	// GrantMaxDuration and GrantMaxUses bound what a person can grant at once.
	GrantMaxDuration = 30 * 24 * time.Hour
	GrantMaxUses     = 10000
	// GrantMaxPrefix bounds a grant's pattern, in words and bytes.
	GrantMaxPrefix      = 64
	GrantMaxPatternSize = 4096
)

// GrantSpec is For parsed: a kind and its duration or uses.
type GrantSpec struct {
	Kind     string // once, session, rule, duration or uses
	Duration time.Duration
	Uses     int
}

// ParseGrant reads an answer's For: once, session, rule, a duration ("90s",
// "5m", "2h") or a use count ("3uses", "1use").
func ParseGrant(s string) (GrantSpec, error) {
	switch s {
	case "", GrantOnce:
		return GrantSpec{Kind: GrantOnce}, nil
	case GrantSession, GrantRule, GrantRun:
		return GrantSpec{Kind: s}, nil
	}
	if n, ok := strings.CutSuffix(s, "uses"); ok || strings.HasSuffix(s, "use") {
		if !ok {
			n = strings.TrimSuffix(s, "use")
		}
		u, err := strconv.Atoi(n)
		if err != nil || u < 1 || u > GrantMaxUses {
			return GrantSpec{}, Errorf(CodeBadRequest, "grant %q: a use count is 1uses to %duses", s, GrantMaxUses)
		}
		return GrantSpec{Kind: GrantUses, Uses: u}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Second || d > GrantMaxDuration {
		return GrantSpec{}, Errorf(CodeBadRequest, "grant %q: want once, session, rule, run (a network ask), a duration from 1s to %s (5m, 2h) or a use count (3uses)", s, GrantMaxDuration)
	}
	return GrantSpec{Kind: "duration", Duration: d}, nil
}

// Grant is one grant as stored and listed.
type Grant struct {
	ID         string    `json:"id"`
	ApprovalID string    `json:"approval_id"` // the approval that made it
	Kind       string    `json:"kind"`        // session, rule, duration or uses
	Workspace  string    `json:"workspace"`
	Profile    string    `json:"profile"`
	SessionID  string    `json:"session_id,omitempty"` // a session grant's session
	Argv       []string  `json:"argv"`                 // the command, or its prefix
	Prefix     bool      `json:"prefix,omitempty"`     // Argv is a prefix
	Uses       int       `json:"uses_left,omitempty"`  // uses left (0: not counted)
	By         string    `json:"granted_by"`
	At         time.Time `json:"granted_at"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"` // zero: until revoked
	Revision   uint64    `json:"revision,omitempty"`  // the bucket's revision (listing only)
}

// Covers reports whether g covers argv in workspace, profile and session at now.
func (g *Grant) Covers(workspace, profile, session string, argv []string, now time.Time) bool {
	if g.Workspace != workspace || g.Profile != profile || (g.SessionID != "" && g.SessionID != session) {
		return false
	}
	if !g.ExpiresAt.IsZero() && !now.Before(g.ExpiresAt) {
		return false
	}
	if len(argv) < len(g.Argv) || (!g.Prefix && len(argv) != len(g.Argv)) {
		return false
	}
	for i, w := range g.Argv {
		if argv[i] != w {
			return false
		}
	}
	return true
}

// GrantList is the answer on SubjectGrants.
type GrantList struct {
	Grants []Grant `json:"grants"`
}

// RevokeRequest ends a grant at once (SubjectRevoke).
type RevokeRequest struct {
	ID     string `json:"id"`
	By     string `json:"by,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// RevokeAck answers a revoke.
type RevokeAck struct {
	ID      string `json:"id"`
	Revoked bool   `json:"revoked"`
}

// ValidGrantPrefix checks an approver's prefix against the asked argv: a
// non-empty leading part of it, bounded.
func ValidGrantPrefix(prefix, argv []string) error {
	if len(prefix) == 0 || len(prefix) > GrantMaxPrefix || len(prefix) > len(argv) {
		return Errorf(CodeBadRequest, "prefix %q: give 1 to %d leading words of the command %q", prefix, min(len(argv), GrantMaxPrefix), argv)
	}
	size := 0
	for i, w := range prefix {
		size += len(w)
		if w != argv[i] {
			return Errorf(CodeBadRequest, "prefix %q is not how the command %q starts", prefix, argv)
		}
	}
	if size > GrantMaxPatternSize {
		return Errorf(CodeBadRequest, "prefix is %d bytes, over %d", size, GrantMaxPatternSize)
	}
	return nil
}

// Describe says what g covers, for listings and reasons.
func (g *Grant) Describe() string {
	if dest, ok := NetDest(g.Argv); ok {
		return "network access to " + dest
	}
	s := fmt.Sprintf("%q", g.Argv)
	if g.Prefix {
		s += " and what follows"
	}
	return s
}
