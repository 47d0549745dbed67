package egress

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Rule is one net_allow or net_deny entry, parsed.
//
//	host            example.com          ports 443 and 80 (allow) / every port (deny)
//	*.domain        *.example.com        any name below example.com, not example.com itself
//	host:port       example.com:22       that port only
//	IP[:port]       203.0.113.7:443      that address; ports as for a host
//	CIDR:port       10.0.0.0/8:5432      the addresses in the range, on that port
//	[v6][:port]     [2001:db8::1]:443    a v6 address or range, bracketed
//
// A range always names its port in an allow list: ranges are how a profile
// reaches private addresses, and it should say exactly where.
type Rule struct {
	Text   string       // as written
	Host   string       // a name rule's name, lower case, no trailing dot
	Wild   bool         // *.domain: Host is the domain
	Prefix netip.Prefix // an address or range rule
	Port   int          // 0: no port named
	// Source is where a rules file's network_rule said it (file:line);
	// empty for a profile's entry.
	Source string
}

// what names the entry for a reason: a profile's list or a rules file.
func (r *Rule) what(list, profile string) string {
	if r.Source != "" {
		return fmt.Sprintf("the network_rule at %s", r.Source)
	}
	return fmt.Sprintf("%s entry %q of profile %s", list, r.Text, profile)
}

// ParseRule parses one entry. allow says which list it comes from: a range
// in an allow list must name its port.
func ParseRule(entry string, allow bool) (Rule, error) {
	r := Rule{Text: entry}
	s := strings.TrimSpace(entry)
	if s == "" || len(s) > 300 {
		return r, errors.New("want host, *.domain, host:port, IP:port or CIDR:port")
	}
	host, port, err := splitEntry(s)
	if err != nil {
		return r, err
	}
	r.Port = port
	if strings.Contains(host, "/") {
		p, err := netip.ParsePrefix(host)
		if err != nil {
			return r, fmt.Errorf("range %q: %v", host, err)
		}
		if p.Addr().Zone() != "" {
			return r, fmt.Errorf("range %q: no zones", host)
		}
		r.Prefix = p.Masked()
		if allow && port == 0 {
			return r, fmt.Errorf("a range names its port, e.g. %s:5432", host)
		}
		return r, nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return r, fmt.Errorf("address %q: no zones", host)
		}
		a = a.Unmap()
		r.Prefix = netip.PrefixFrom(a, a.BitLen())
		return r, nil
	}
	name, wild := strings.CutPrefix(host, "*.")
	name, ok := CanonicalName(name)
	if !ok {
		return r, fmt.Errorf("%q is not a host name (letters, digits, dashes and dots)", host)
	}
	r.Host, r.Wild = name, wild
	return r, nil
}

// splitEntry cuts host and port; the host keeps no brackets.
func splitEntry(s string) (string, int, error) {
	portOf := func(p string) (int, error) {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 || p[0] == '0' {
			return 0, fmt.Errorf("port %q: want 1 to 65535", p)
		}
		return n, nil
	}
	if rest, ok := strings.CutPrefix(s, "["); ok {
		host, after, ok := strings.Cut(rest, "]")
		if !ok {
			return "", 0, errors.New("unclosed [")
		}
		if after == "" {
			return host, 0, nil
		}
		p, ok := strings.CutPrefix(after, ":")
		if !ok {
			return "", 0, fmt.Errorf("after ] comes :port, not %q", after)
		}
		n, err := portOf(p)
		return host, n, err
	}
	switch strings.Count(s, ":") {
	case 0:
		return s, 0, nil
	case 1:
		host, p, _ := strings.Cut(s, ":")
		n, err := portOf(p)
		return host, n, err
	}
	return "", 0, errors.New("a v6 address goes in brackets: [2001:db8::1]:443")
}

// CanonicalName lower-cases a host name and drops one trailing dot; ok is
// false for anything but letters, digits, dashes, underscores and dots in
// labels of 1 to 63 characters (253 in all). Non-ASCII names must come in
// their punycode form.
func CanonicalName(s string) (string, bool) {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return "", false
	}
	b := []byte(s)
	label := 0
	for i, c := range b {
		switch {
		case c >= 'A' && c <= 'Z':
			b[i] = c + 'a' - 'A'
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		case c == '.':
			if label == 0 {
				return "", false
			}
			label = -1
		default:
			return "", false
		}
		label++
		if label > 63 {
			return "", false
		}
	}
	if label == 0 {
		return "", false
	}
	return string(b), true
}

// matchName reports whether the name rule covers name (canonical).
func (r *Rule) matchName(name string) bool {
	if r.Host == "" {
		return false
	}
	if r.Wild {
		return len(name) > len(r.Host)+1 && strings.HasSuffix(name, r.Host) && name[len(name)-len(r.Host)-1] == '.'
	}
	return name == r.Host
}

// matchPort: a rule without a port admits 443 and 80 in an allow list and
// every port in a deny list.
func (r *Rule) matchPort(port int, allow bool) bool {
	if r.Port != 0 {
		return r.Port == port
	}
	return !allow || port == 443 || port == 80
}

// matchAddr reports whether the address rule covers a.
func (r *Rule) matchAddr(a netip.Addr) bool {
	return r.Prefix.IsValid() && r.Prefix.Contains(a.Unmap())
}
