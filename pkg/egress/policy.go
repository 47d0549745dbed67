package egress

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Rules named in verdicts and denials: stable strings a model, a log query
// and the docs share.
const (
	RuleAllowed     = "net.allowed"      // an allow entry (or full network) admits it
	RuleDenied      = "net.denied"       // a net_deny entry matches
	RuleNotAllowed  = "net.not-allowed"  // no allow entry names the host
	RulePort        = "net.port"         // an entry names the host, not this port
	RuleNoEgress    = "net.no-egress"    // the allow list is empty
	RuleAddress     = "net.address"      // the destination address is special (loopback, private, …)
	RuleSNI         = "net.sni-mismatch" // TLS names another host than CONNECT did
	RuleECH         = "net.ech"          // encrypted ClientHello hides the server name
	RuleHost        = "net.host-mismatch"
	RuleUnresolved  = "net.unresolved" // the name has no address
	RuleUnreachable = "net.unreachable"
	RuleProtocol    = "net.protocol" // a request the proxy does not serve
	RulePrompt      = "net.prompt"   // a rules file's network_rule says to ask a person
)

// Policy decides by name, then by address, which destinations a run may
// reach. Deny entries win over allow entries; an empty allow list (without
// Any) admits nothing. It is immutable once made and safe for concurrent use.
type Policy struct {
	Profile string
	Any     bool // full network: every public name and address
	Allow   []Rule
	Deny    []Rule
	Prompt  []Rule // asked of a person (or refused) before any allow; every port
}

// NewPolicy parses a profile's lists. any is full network: every public
// destination, with deny and the address checks still in force.
func NewPolicy(profile string, any bool, allow, deny []string) (*Policy, error) {
	p := &Policy{Profile: profile, Any: any}
	for _, e := range allow {
		r, err := ParseRule(e, true)
		if err != nil {
			return nil, fmt.Errorf("net_allow %q: %w", e, err)
		}
		p.Allow = append(p.Allow, r)
	}
	for _, e := range deny {
		r, err := ParseRule(e, false)
		if err != nil {
			return nil, fmt.Errorf("net_deny %q: %w", e, err)
		}
		p.Deny = append(p.Deny, r)
	}
	return p, nil
}

// Add puts one rules-file entry (a network_rule as policyd compiled it)
// in the list its decision names: allow, deny or prompt. Deny and prompt
// entries cover every port of their host.
func (p *Policy) Add(decision, entry, source string) error {
	r, err := ParseRule(entry, decision == "allow")
	if err != nil {
		return fmt.Errorf("network_rule at %s (%q): %w", source, entry, err)
	}
	r.Source = source
	switch decision {
	case "allow":
		p.Allow = append(p.Allow, r)
	case "deny":
		p.Deny = append(p.Deny, r)
	case "prompt":
		p.Prompt = append(p.Prompt, r)
	default:
		return fmt.Errorf("network_rule at %s: decision %q: want allow, deny or prompt", source, decision)
	}
	return nil
}

// Verdict is a decision and the rule behind it.
type Verdict struct {
	OK     bool
	Rule   string // one of the Rule* constants
	Entry  string // the list entry that decided, when one did
	Reason string // for a person or a model
}

// Admit judges a destination by name (or address literal) and port, before
// anything is resolved.
func (p *Policy) Admit(host string, port int) Verdict {
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return p.admitLiteral(a, port)
	}
	name, ok := CanonicalName(host)
	if !ok {
		return Verdict{Rule: RuleProtocol, Reason: fmt.Sprintf("%q is not a host name", host)}
	}
	for i := range p.Deny {
		if r := &p.Deny[i]; r.matchName(name) && r.matchPort(port, false) {
			return Verdict{Rule: RuleDenied, Entry: r.Text, Reason: r.what("net_deny", p.Profile) + " names it"}
		}
	}
	for i := range p.Prompt {
		if r := &p.Prompt[i]; r.matchName(name) {
			return Verdict{Rule: RulePrompt, Entry: r.Text, Reason: r.what("prompt", p.Profile) + " says a person decides"}
		}
	}
	other := ""
	for i := range p.Allow {
		r := &p.Allow[i]
		if !r.matchName(name) {
			continue
		}
		if r.matchPort(port, true) {
			return Verdict{OK: true, Rule: RuleAllowed, Entry: r.Text}
		}
		other = r.Text
	}
	switch {
	case p.Any:
		return Verdict{OK: true, Rule: RuleAllowed, Entry: "full network"}
	case other != "":
		return Verdict{Rule: RulePort, Entry: other, Reason: fmt.Sprintf("profile %s allows %s only as %q (a bare host means ports 443 and 80)", p.Profile, name, other)}
	case len(p.Allow) == 0:
		return Verdict{Rule: RuleNoEgress, Reason: fmt.Sprintf("profile %s allows no network destination", p.Profile)}
	}
	return Verdict{Rule: RuleNotAllowed, Reason: fmt.Sprintf("%s is not in the allow list of profile %s", name, p.Profile)}
}

// admitLiteral judges an address given as the destination itself: only an
// address or range entry (or full network, for a public address) admits it.
func (p *Policy) admitLiteral(a netip.Addr, port int) Verdict {
	v := p.Address(a, port)
	if !v.OK {
		return v
	}
	for i := range p.Prompt {
		if r := &p.Prompt[i]; r.matchAddr(a.Unmap()) {
			return Verdict{Rule: RulePrompt, Entry: r.Text, Reason: r.what("prompt", p.Profile) + " says a person decides"}
		}
	}
	if v.Entry != "" {
		return v
	}
	if p.Any {
		return Verdict{OK: true, Rule: RuleAllowed, Entry: "full network"}
	}
	if len(p.Allow) == 0 {
		return Verdict{Rule: RuleNoEgress, Reason: fmt.Sprintf("profile %s allows no network destination", p.Profile)}
	}
	return Verdict{Rule: RuleNotAllowed, Reason: fmt.Sprintf("address %s is not in the allow list of profile %s, which names hosts: use the host name", a, p.Profile)}
}

// Address judges one resolved address for a destination already admitted by
// name. A deny range wins; a special address (loopback, private, link-local,
// …) passes only when an allow entry names a range around it no wider than
// its class, and names the port — so 0.0.0.0/0 never reaches the host. OK
// with an empty Entry means "an ordinary public address".
func (p *Policy) Address(a netip.Addr, port int) Verdict {
	a = a.Unmap().WithZone("")
	for i := range p.Deny {
		if r := &p.Deny[i]; r.matchAddr(a) && r.matchPort(port, false) {
			return Verdict{Rule: RuleDenied, Entry: r.Text, Reason: fmt.Sprintf("%s covers %s", r.what("net_deny", p.Profile), a)}
		}
	}
	class, in := Classify(a)
	for i := range p.Allow {
		r := &p.Allow[i]
		if !r.matchAddr(a) || !r.matchPort(port, true) {
			continue
		}
		if class == "" || (r.Port != 0 && r.Prefix.Bits() >= in.Bits()) {
			return Verdict{OK: true, Rule: RuleAllowed, Entry: r.Text}
		}
	}
	if class != "" {
		return Verdict{Rule: RuleAddress, Reason: fmt.Sprintf("%s is a %s address, which no profile reaches unless it names that range and port", a, class)}
	}
	return Verdict{OK: true, Rule: RuleAllowed}
}

// Named reports whether DNS may answer for name: some allow entry (or full
// network) admits it on some port and no deny entry takes every port.
func (p *Policy) Named(name string) bool {
	name, ok := CanonicalName(name)
	if !ok {
		return false
	}
	for i := range p.Deny {
		if r := &p.Deny[i]; r.matchName(name) && r.Port == 0 {
			return false
		}
	}
	if p.Any {
		return true
	}
	for i := range p.Allow {
		if p.Allow[i].matchName(name) {
			return true
		}
	}
	return false
}

// Reachable reports whether the proxy would connect to a on some port a
// name's entries allow: what DNS may hand out.
func (p *Policy) Reachable(a netip.Addr) bool {
	for _, port := range []int{443, 80} {
		if p.Address(a, port).OK {
			return true
		}
	}
	for i := range p.Allow {
		if port := p.Allow[i].Port; port != 0 && p.Address(a, port).OK {
			return true
		}
	}
	return false
}

// Fix tells how a denied destination could be allowed, for the denial line.
func (p *Policy) Fix(host string, port int, v Verdict) string {
	entry := host
	if port != 443 && port != 80 {
		entry = joinHostPort(host, port)
	}
	switch v.Rule {
	case RuleNotAllowed, RulePort, RuleNoEgress:
		return fmt.Sprintf("add %q to net_allow of the profile (profiles.toml), or ask the user to", entry)
	case RuleDenied:
		if src := p.source(p.Deny, v.Entry); src != "" {
			return fmt.Sprintf("remove the network_rule at %s, or ask the user to", src)
		}
		return fmt.Sprintf("remove %q from net_deny of the profile, or ask the user to", v.Entry)
	case RulePrompt:
		return fmt.Sprintf("a person must approve it (under approval on-request, moat approvals), or change the network_rule at %s", p.source(p.Prompt, v.Entry))
	case RuleAddress:
		return "a profile reaches this address only by naming its range and port in net_allow (e.g. \"10.0.0.0/8:5432\"); ask the user"
	case RuleSNI, RuleHost:
		return "connect to the host the request names"
	case RuleECH:
		return "turn off encrypted ClientHello for this client"
	}
	return "check the destination"
}

// source is where the rules-file entry text of list came from ("" for a
// profile's own).
func (p *Policy) source(list []Rule, text string) string {
	for i := range list {
		if list[i].Text == text && list[i].Source != "" {
			return list[i].Source
		}
	}
	return ""
}

func joinHostPort(host string, port int) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + strconv.Itoa(port)
	}
	return host + ":" + strconv.Itoa(port)
}
