package sandbox

import (
	"context"
	"sort"
	"strconv"
	"strings"

	"github.com/moatsec/moat/pkg/egress"
	"github.com/moatsec/moat/pkg/sandbox/inside"
	"github.com/moatsec/moat/pkg/wire"
)

// ProxyPort is where a run's egress proxy listens, on 127.0.0.1 inside the
// run's own network namespace (so it is free in every run): HTTP, CONNECT
// and SOCKS5 on the one port. DNS answers on 127.0.0.1:53.
const ProxyPort = inside.ProxyPort

// NetHooks reach into a run's egress. The zero value is production: the
// host's resolver, a plain dialer, no record.
type NetHooks struct {
	Resolver egress.Resolver   // looks names up; default the host's resolver
	Dialer   egress.Dialer     // makes the outgoing connections; default net.Dialer
	OnConn   func(egress.Conn) // hears of every connection when it ends
	// Ask, when set, puts a destination the lists refuse to a person
	// (sandboxd: through policyd, under approval on-request).
	Ask func(context.Context, egress.Ask) egress.Answer
}

// egressOn reports whether a run's network goes through the egress proxy:
// every profile with network but trusted, and trusted too once its network
// is narrowed (an allowlist or a deny list, from profiles.toml or a
// .moat-profile): only the proxy can hold a run to its lists, and the
// host's own network would hold it to none.
func egressOn(p *wire.Profile) bool {
	switch p.Net.Mode {
	case wire.NetAllowlist:
		return true
	case wire.NetFull:
		return p.Base != "trusted" || len(p.Net.Deny) > 0
	}
	return false
}

// proxyVars are the variables that send a command's traffic to the proxy.
func proxyVars() map[string]string {
	proxy := "http://127.0.0.1:" + strconv.Itoa(ProxyPort)
	socks := "socks5h://127.0.0.1:" + strconv.Itoa(ProxyPort)
	vars := map[string]string{"HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "ALL_PROXY": socks, "NO_PROXY": "localhost,127.0.0.1,::1"}
	for k, v := range vars {
		vars[strings.ToLower(k)] = v
	}
	return vars
}

// withProxyVars sets the proxy variables in env (NAME=value, sorted),
// replacing whatever the request said for them.
func withProxyVars(env []string) []string {
	vars := proxyVars()
	out := make([]string, 0, len(env)+len(vars))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if _, ours := vars[k]; !ours {
			out = append(out, kv)
		}
	}
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}
