package profile

import (
	"fmt"
	"slices"

	"github.com/moatsec/moat/pkg/egress"
	"github.com/moatsec/moat/pkg/wire"
)

// DefaultNetAllow is workspace-net's allow list: the package registries and
// code hosts that installs and clones need, and nothing else. A bare host
// admits ports 443 and 80 (see docs/profiles.md).
var DefaultNetAllow = []string{
	// Go: the module proxy and checksum database.
	"proxy.golang.org", "sum.golang.org",
	// npm and Yarn.
	"registry.npmjs.org", "registry.yarnpkg.com",
	// PyPI and its files host.
	"pypi.org", "files.pythonhosted.org",
	// Rust: the crates registry, its sparse index and downloads.
	"crates.io", "index.crates.io", "static.crates.io",
	// RubyGems.
	"rubygems.org", "index.rubygems.org",
	// Maven Central.
	"repo.maven.apache.org", "repo1.maven.org",
	// GitHub, its content hosts, and git over ssh (through SOCKS5).
	"github.com", "api.github.com", "codeload.github.com", "*.githubusercontent.com", "github.com:22",
	// Debian's mirrors.
	"deb.debian.org", "security.debian.org",
}

// checkHosts checks net_allow entries (see egress.ParseRule).
func checkHosts(hosts []string) error {
	for _, h := range hosts {
		if _, err := egress.ParseRule(h, true); err != nil {
			return fmt.Errorf("net_allow %q: %v", h, err)
		}
	}
	return nil
}

// checkDeny checks net_deny entries.
func checkDeny(hosts []string) error {
	for _, h := range hosts {
		if _, err := egress.ParseRule(h, false); err != nil {
			return fmt.Errorf("net_deny %q: %v", h, err)
		}
	}
	return nil
}

// meetNet orders none < allowlist < full; two allowlists meet in their
// common entries; the deny lists add up.
func meetNet(a, b wire.Net) wire.Net {
	deny := tidy(append(slices.Clone(a.Deny), b.Deny...))
	if len(deny) == 0 {
		deny = nil
	}
	switch {
	case a.Mode == wire.NetNone || b.Mode == wire.NetNone:
		return wire.Net{Mode: wire.NetNone}
	case a.Mode == wire.NetFull && b.Mode == wire.NetFull:
		return wire.Net{Mode: wire.NetFull, Deny: deny}
	case a.Mode == wire.NetFull:
		return wire.Net{Mode: wire.NetAllowlist, Allow: tidy(b.Allow), Deny: deny}
	case b.Mode == wire.NetFull:
		return wire.Net{Mode: wire.NetAllowlist, Allow: tidy(a.Allow), Deny: deny}
	}
	var both []string
	for _, x := range a.Allow {
		if slices.Contains(b.Allow, x) {
			both = append(both, x)
		}
	}
	if len(both) == 0 {
		return wire.Net{Mode: wire.NetNone}
	}
	return wire.Net{Mode: wire.NetAllowlist, Allow: tidy(both), Deny: deny}
}

func withNetAllow(s *Spec) *Spec {
	s.Net.Allow = DefaultNetAllow
	return s
}
