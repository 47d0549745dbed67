package sandbox

import (
	"sort"
	"strings"

	"github.com/moatsec/moat/pkg/sandbox/inside"
	"github.com/moatsec/moat/pkg/wire"
)

// DefaultPath is PATH when the request gives none.
const DefaultPath = inside.DefaultPath

// Environ builds a command's environment: the profile's fixed variables, the
// request's own variables with credentials removed, then the basics a
// command expects (PATH, HOME, USER) when missing. The result is sorted.
func Environ(p *wire.Profile, req map[string]string, home, user string) []string {
	env := map[string]string{}
	for k, v := range req {
		if validName(k) && !wire.SecretVar(k) && !strings.ContainsRune(v, 0) {
			env[k] = v
		}
	}
	for k, v := range p.Env.Set {
		if !wire.SecretVar(k) {
			env[k] = v
		}
	}
	defaults := map[string]string{"PATH": DefaultPath, "HOME": home, "USER": user, "LOGNAME": user, "LANG": "C.UTF-8", "TMPDIR": "/tmp"}
	for k, v := range defaults {
		if _, ok := env[k]; !ok && v != "" {
			env[k] = v
		}
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// Pass picks, from an environment such as the caller's, the variables a
// profile lets through (what moat run sends).
func Pass(p *wire.Profile, environ []string) map[string]string {
	out := map[string]string{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		for _, name := range p.Env.Pass {
			if k == name {
				out[k] = v
			}
		}
	}
	return out
}

func validName(k string) bool { return wire.ValidVarName(k) }
