package policy

import (
	"net/netip"
	"slices"

	"github.com/moatsec/moat/pkg/wire"
)

// Egress is what the rules files' network_rule entries add to a run's
// egress lists (docs/policy.md, "Network rules"), compiled once at load:
//
//   - one decision per host, the strictest of its rules (forbidden, then
//     prompt, then allow), wherever they are — Codex lets the last rule for
//     a host win; moat, as with prefix rules, lets no later file un-deny;
//   - an allow admits the host on its protocol's port: http 80, https 443,
//     socks5_tcp 443 and 80 (a bare host, as in net_allow); socks5_udp
//     admits nothing, the proxy carries no UDP;
//   - a deny or prompt covers the host on every port.
//
// An IP literal is kept as an address entry ("203.0.113.7:443").
func (rs *Ruleset) Egress() []wire.NetRule {
	if rs == nil {
		return nil
	}
	return rs.egress
}

// compileEgress makes Egress from the network rules in file order.
func compileEgress(rules []NetworkRule) []wire.NetRule {
	type hostRules struct {
		decision severity
		source   string
		ports    []string // allow: the port suffixes, in order, once each
	}
	byHost := map[string]*hostRules{}
	var order []string
	for _, nr := range rules {
		s := severityOfCodex(nr.Decision)
		h := byHost[nr.Host]
		if h == nil {
			h = &hostRules{decision: s, source: nr.Source}
			byHost[nr.Host] = h
			order = append(order, nr.Host)
		} else if s > h.decision {
			h.decision, h.source, h.ports = s, nr.Source, nil
		}
		if s != allow || h.decision != allow {
			continue
		}
		port := map[string]string{"http": ":80", "https": ":443", "socks5_tcp": ""}
		p, ok := port[nr.Protocol]
		if !ok {
			continue
		}
		if !slices.Contains(h.ports, p) {
			h.ports = append(h.ports, p)
		}
	}
	var out []wire.NetRule
	for _, host := range order {
		h := byHost[host]
		entry := host
		if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
			entry = "[" + a.String() + "]"
		}
		switch h.decision {
		case deny:
			out = append(out, wire.NetRule{Entry: entry, Decision: wire.VerdictDeny, Source: h.source})
		case prompt:
			out = append(out, wire.NetRule{Entry: entry, Decision: wire.VerdictPrompt, Source: h.source})
		default:
			if slices.Contains(h.ports, "") {
				h.ports = []string{""} // a bare host already means 443 and 80
			}
			for _, p := range h.ports {
				out = append(out, wire.NetRule{Entry: entry + p, Decision: wire.VerdictAllow, Source: h.source})
			}
		}
	}
	return out
}

// egressAllows lists the rules files' allow entries, for judging the hosts
// a command names as the proxy will.
func (rs *Ruleset) egressAllows() []string {
	if rs == nil {
		return nil
	}
	var out []string
	for _, r := range rs.egress {
		if r.Decision == wire.VerdictAllow {
			out = append(out, r.Entry)
		}
	}
	return out
}
