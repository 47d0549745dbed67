// Package egress is a run's only way out of its network namespace: an
// allowlist proxy that judges every connection by name and then by address,
// and a DNS responder that answers only for names the proxy would let
// through.
//
// One listener serves HTTP proxy requests (absolute http:// URIs), CONNECT
// tunnels (HTTPS, never decrypted) and SOCKS5 (CONNECT with a host name or
// an address); a packet socket serves DNS. sandboxd creates both inside the
// run's network namespace, on loopback, and serves them from the host side;
// a command that ignores the proxy variables finds no route at all.
//
// A connection is allowed when, in this order:
//
//  1. no net_deny entry names the host (or address) and port, nor a rules
//     file's deny ([Policy.Add]); no rules file's prompt names the host;
//  2. a net_allow entry does ([Rule]: host, *.domain, host:port, IP:port,
//     CIDR:port; a bare host means ports 443 and 80), or a rules file's
//     allow, or the profile has full network; an empty allow list admits
//     nothing. A refusal at this step for want of an entry (or a prompt)
//     may be put to a person ([Config.Ask], ask.go) while the connection
//     waits; a deny entry's never;
//  3. the name resolves, and of its addresses only those pass that are
//     public ([Classify]) or lie in an allow range no wider than their
//     class (10.0.0.0/8:5432 reaches 10.1.2.3:5432; 0.0.0.0/0:443 never
//     reaches loopback). The proxy dials only addresses that passed, so a
//     name that resolves to the host's loopback or the metadata endpoint
//     (DNS rebinding) gets nowhere;
//  4. inside a tunnel, a TLS ClientHello names the tunnel's host (or none)
//     and is not encrypted (ECH); cleartext HTTP in a tunnel, and an
//     absolute-URI request, carry a Host that names the same host.
//
// Invariants:
//   - the [Dialer] only ever receives "ip:port" of an address that passed
//     step 3: tests instrument it to prove nothing else is dialed;
//   - DNS never asks the [Resolver] about a name the policy does not admit:
//     the answer is NXDOMAIN, made locally;
//   - every connection, allowed or refused, produces one [Conn] record when
//     it ends; every refusal one [Denial] (a 403 with X-Moat-Deny, a SOCKS
//     "not allowed by ruleset", or a closed tunnel) reported to OnDeny;
//   - Serve and ServeDNS own every goroutine they start and return only
//     once those have ended; cancelling their context closes every
//     connection.
package egress
