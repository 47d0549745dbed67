package profile

import (
	"fmt"
	"sort"

	"github.com/moatsec/moat/pkg/wire"
)

// List describes every profile a client may ask for.
func (r *Resolver) List() *wire.ProfileList {
	cat := r.catalog.Load()
	out := &wire.ProfileList{Default: Default}
	for _, name := range cat.names {
		s := cat.specs[name]
		var aliases []string
		for a, b := range Aliases {
			if b == name {
				aliases = append(aliases, a)
			}
		}
		sort.Strings(aliases)
		write := [...]string{"nothing", "workspace", "everything"}[s.scope]
		if len(s.Write) > 0 {
			write += fmt.Sprintf(" + %d more", len(s.Write))
		}
		out.Profiles = append(out.Profiles, wire.ProfileInfo{
			Name: name, Base: s.Base, Description: s.Description, Aliases: aliases,
			Write: write, Network: s.Net.Mode, Enabled: s.Base != Trusted || r.opts.AllowTrusted, Source: s.Source,
			Caches: s.Caches, CacheScope: cacheScope(s), NetAllow: s.Net.Allow, NetDeny: s.Net.Deny, Read: s.Read,
		})
	}
	return out
}
