package egress

import (
	"net/netip"
)

// special is an address range no command reaches unless a profile names it:
// the host itself, its networks, the cloud's metadata endpoint, and
// addresses that are not destinations at all.
type special struct {
	prefix netip.Prefix
	class  string
}

var specials = func() []special {
	var out []special
	for _, s := range []struct{ cidr, class string }{
		{"0.0.0.0/8", "unspecified"},
		{"127.0.0.0/8", "loopback"},
		{"10.0.0.0/8", "private"},
		{"172.16.0.0/12", "private"},
		{"192.168.0.0/16", "private"},
		{"100.64.0.0/10", "cgnat"},
		{"169.254.0.0/16", "link-local"}, // 169.254.169.254: cloud metadata
		{"192.0.0.0/24", "reserved"},     // IETF protocol assignments (and some metadata endpoints)
		{"192.0.2.0/24", "documentation"},
		{"198.51.100.0/24", "documentation"},
		{"203.0.113.0/24", "documentation"},
		{"198.18.0.0/15", "benchmarking"},
		{"192.88.99.0/24", "reserved"},
		{"224.0.0.0/4", "multicast"},
		{"240.0.0.0/4", "reserved"}, // and 255.255.255.255, broadcast
		{"::/128", "unspecified"},
		{"::1/128", "loopback"},
		{"::/96", "reserved"}, // v4-compatible, deprecated
		{"64:ff9b:1::/48", "private"},
		{"100::/64", "reserved"}, // discard
		{"2001:db8::/32", "documentation"},
		{"fc00::/7", "ula"},
		{"fe80::/10", "link-local"},
		{"fec0::/10", "link-local"}, // site-local, deprecated
		{"ff00::/8", "multicast"},
		{"fd00:ec2::254/128", "link-local"}, // AWS metadata over v6 (inside ULA anyway)
	} {
		out = append(out, special{netip.MustParsePrefix(s.cidr), s.class})
	}
	return out
}()

// embedded6 are v6 ranges that carry a v4 address a packet may end up at;
// the v4 address inside is classified too.
var (
	nat64  = netip.MustParsePrefix("64:ff9b::/96")
	sixto4 = netip.MustParsePrefix("2002::/16")
	teredo = netip.MustParsePrefix("2001::/32")
)

// Classify names the kind of special address a is ("loopback", "private",
// "link-local", "cgnat", "ula", "multicast", "unspecified", …), with the
// range that holds it; class is "" for an ordinary public address. A v6
// address carrying a v4 one (mapped, NAT64, 6to4) is classified by the v4
// address; Teredo is refused outright, as its relays reach anything.
func Classify(a netip.Addr) (class string, in netip.Prefix) {
	a = a.Unmap()
	if a.Zone() != "" {
		a = a.WithZone("")
	}
	if a.Is6() {
		b := a.As16()
		switch {
		case nat64.Contains(a):
			if c, p := Classify(netip.AddrFrom4([4]byte(b[12:16]))); c != "" {
				return c, p
			}
		case sixto4.Contains(a):
			if c, p := Classify(netip.AddrFrom4([4]byte(b[2:6]))); c != "" {
				return c, p
			}
		case teredo.Contains(a):
			return "tunnel", teredo
		}
	}
	for _, s := range specials {
		if s.prefix.Contains(a) {
			return s.class, s.prefix
		}
	}
	if !a.IsValid() {
		return "invalid", netip.Prefix{}
	}
	return "", netip.Prefix{}
}
