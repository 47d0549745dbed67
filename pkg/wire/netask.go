package wire

import (
	"net"
	"strconv"
	"strings"
)

// NetAsk is a run's egress proxy asking a person for a destination its
// lists refuse (docs/sandbox.md, "Asking for a host"): sandboxd sends it as
// CheckRequest.Net on SubjectCheckResolved, with the run's resolved profile
// and approval on-request, while the connection waits. policyd judges no
// command then: the answer is a person's (or a grant's, made by one).
type NetAsk struct {
	Proto  string `json:"proto"` // http, connect, socks5
	Host   string `json:"host"`
	Port   int    `json:"port"`
	Rule   string `json:"rule"`   // why the lists refuse it: net.not-allowed, net.port, net.no-egress, net.prompt
	Reason string `json:"reason"` // the same, for a person
}

// Dest is host:port.
func (a *NetAsk) Dest() string { return net.JoinHostPort(a.Host, strconv.Itoa(a.Port)) }

// A network ask stands, in approvals and grants, as the argv
// NetArgv(dest): its first word holds a NUL byte, which no command's argv
// can (policy refuses one), so a grant made for a destination never covers
// a command, and no command's grant covers a destination.
const netArgv0 = "\x00net"

// NetArgv is the argv a network ask for dest (host:port) stands as.
func NetArgv(dest string) []string { return []string{netArgv0, dest} }

// NetDest is the destination argv stands for, if it is a network ask's.
func NetDest(argv []string) (string, bool) {
	if len(argv) == 2 && argv[0] == netArgv0 {
		return argv[1], true
	}
	return "", false
}

// validate bounds a network ask's fields; it carries no argv of its own.
func (a *NetAsk) validate(argv []string) error {
	switch {
	case len(argv) != 0:
		return Errorf(CodeBadRequest, "a network ask carries no argv")
	case a.Host == "" || len(a.Host) > 253 || strings.ContainsAny(a.Host, "\x00 /"):
		return Errorf(CodeBadRequest, "network ask: %q is not a host name or address", a.Host)
	case a.Port < 1 || a.Port > 65535:
		return Errorf(CodeBadRequest, "network ask: port %d: want 1 to 65535", a.Port)
	case a.Proto != "http" && a.Proto != "connect" && a.Proto != "socks5":
		return Errorf(CodeBadRequest, "network ask: proto %q: want http, connect or socks5", a.Proto)
	}
	return firstErr(checkText("network ask rule", a.Rule, 64), checkText("network ask reason", a.Reason, 1024))
}
