package bus

import (
	"encoding/base64"
	"slices"

	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// keyAuth admits a connection exactly as nats-server's nkey users would —
// a known public key, the server's nonce signed by it, a connection type the
// key may use — and then gives each connection of a caller role
// (wire.CallerRoles) permissions of its own: its inbox narrowed to the id it
// claimed in CONNECT's auth_token (see [CallerPermissions]). nats-server can
// only give permissions per key; agents share the client key, and this is
// what keeps one agent from reading another's answers and run output.
//
// It replaces the server's nkey table (opts.Nkeys, the role keys and the
// leaf keys of a hub), so it sees leaf connections too.
type keyAuth struct {
	users map[string]*server.NkeyUser // public key → user
	roles map[string]string           // public key → role, for the role keys
}

// useKeyAuth moves opts.Nkeys into a keyAuth that authenticates every
// client and leaf connection; roles maps the role keys' public keys to their
// role.
func useKeyAuth(opts *server.Options, roles map[string]string) {
	a := &keyAuth{users: map[string]*server.NkeyUser{}, roles: map[string]string{}}
	for _, u := range opts.Nkeys {
		a.users[u.Nkey] = u
	}
	for role, pub := range roles {
		a.roles[pub] = role
	}
	opts.Nkeys = nil
	opts.AlwaysEnableNonce = true
	opts.CustomClientAuthentication = a
}

// Check implements server.Authentication.
func (a *keyAuth) Check(c server.ClientAuthentication) bool {
	o := c.GetOpts()
	u := a.users[o.Nkey]
	if u == nil || !typeAllowed(c.Kind(), u.AllowedConnectionTypes) || !signed(o.Nkey, o.Sig, c.GetNonce()) {
		return false
	}
	perms := u.Permissions
	if role := a.roles[o.Nkey]; slices.Contains(wire.CallerRoles, role) {
		if o.Token != "" && !wire.ValidToken(o.Token) {
			return false
		}
		perms = CallerPermissions(role, o.Token)
	} else if o.Token != "" {
		return false // only callers claim an inbox
	}
	reg, ok := c.(nkeyRegistrar)
	return ok && reg.RegisterNkeyUser(&server.NkeyUser{Nkey: u.Nkey, Permissions: perms, AllowedConnectionTypes: u.AllowedConnectionTypes}) == nil
}

// nkeyRegistrar is how nats-server's connection takes the user it
// authenticated as (what it does itself for an nkey user).
type nkeyRegistrar interface {
	RegisterNkeyUser(*server.NkeyUser) error
}

// typeAllowed says whether a connection of kind may use a key limited to
// types (none: any, as nats-server has it). No websocket or MQTT listener
// is configured, so a client connection is a standard or in-process one.
func typeAllowed(kind int, types map[string]struct{}) bool {
	if len(types) == 0 {
		return kind == server.CLIENT || kind == server.LEAF
	}
	has := func(t string) bool { _, ok := types[t]; return ok }
	switch kind {
	case server.CLIENT:
		return has("STANDARD") || has("IN_PROCESS")
	case server.LEAF:
		return has("LEAFNODE")
	}
	return false
}

// signed verifies that sig (base64, URL or standard alphabet) signs nonce
// with the public key pub.
func signed(pub, sig string, nonce []byte) bool {
	if sig == "" || len(nonce) == 0 {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		if raw, err = base64.StdEncoding.DecodeString(sig); err != nil {
			return false
		}
	}
	kp, err := nkeys.FromPublicKey(pub)
	if err != nil {
		return false
	}
	return kp.Verify(nonce, raw) == nil
}
