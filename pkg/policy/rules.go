package policy

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/moatsec/moat/pkg/smallfile"
	"github.com/moatsec/moat/pkg/wire"
)

// Limits on rules files: a hostile or broken file must not hang policyd.
const (
	maxRulesFileBytes = 4 << 20
	maxRulesSteps     = 5_000_000
)

// Ruleset is what rules files in Codex's execpolicy format declare:
// prefix rules indexed by the first token of their pattern, host_executable
// path lists and network rules. It is immutable once loaded.
type Ruleset struct {
	byFirst  map[string][]*prefixRule
	hostExec map[string][]string // host_executable: name → absolute paths ("~/" kept)
	network  []NetworkRule
	egress   []wire.NetRule // network rules compiled for the egress proxy (netrules.go)
	notices  []string
	files    []string
	count    int
}

type prefixRule struct {
	pattern       [][]string // alternatives at each position
	decision      severity
	justification string
	source        string // file:line
}

// NetworkRule is one network_rule(host, protocol, decision, justification).
// They feed a run's egress lists ([Ruleset.Egress]); a prompt or forbidden
// also applies to the hosts a command names (see docs/policy.md).
type NetworkRule struct {
	Host          string `json:"host"`     // normalized: lowercase, no port, no trailing dot
	Protocol      string `json:"protocol"` // http, https, socks5_tcp, socks5_udp
	Decision      string `json:"decision"` // allow, prompt, forbidden
	Justification string `json:"justification,omitempty"`
	Source        string `json:"source"` // file:line
}

func emptyRuleset() *Ruleset {
	return &Ruleset{byFirst: map[string][]*prefixRule{}, hostExec: map[string][]string{}}
}

// Files are the files the ruleset came from.
func (rs *Ruleset) Files() []string { return rs.files }

// Len is how many prefix rules it holds.
func (rs *Ruleset) Len() int { return rs.count }

// NetworkRules are the network_rule entries, in file order.
func (rs *Ruleset) NetworkRules() []NetworkRule { return rs.network }

// HostExecutables are the host_executable entries: a name and the absolute
// paths (possibly "~/…") its basename rules are limited to.
func (rs *Ruleset) HostExecutables() map[string][]string { return rs.hostExec }

// Notices name, with file:line, each part of the files that moat uses only
// in part. Loading went on because ignoring that part is stricter than
// honouring it, or because the part is applied as far as moat can.
func (rs *Ruleset) Notices() []string { return rs.notices }

// LoadRules reads the given files and every *.rules file in the given
// directories (a missing path is empty), in order. Any error — a syntax
// error, a bad argument, an example that does not behave — names the file
// and line, and nothing is loaded: a caller keeps the rules it had.
func LoadRules(paths ...string) (*Ruleset, error) {
	files, err := rulesFiles(paths)
	if err != nil {
		return nil, err
	}
	rs := emptyRuleset()
	for _, f := range files {
		data, err := readLimited(f)
		if err != nil {
			return nil, err
		}
		if err := rs.parseFile(f, data); err != nil {
			return nil, err
		}
		rs.files = append(rs.files, f)
	}
	rs.egress = compileEgress(rs.network)
	return rs, nil
}

// rulesFiles expands directories into their *.rules files, sorted.
func rulesFiles(paths []string) ([]string, error) {
	var files []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			files = append(files, p)
			continue
		}
		matches, err := filepath.Glob(filepath.Join(p, "*.rules"))
		if err != nil {
			return nil, err
		}
		sort.Strings(matches)
		files = append(files, matches...)
	}
	return files, nil
}

func readLimited(path string) ([]byte, error) {
	data, err := smallfile.Read(path, maxRulesFileBytes)
	if errors.Is(err, smallfile.ErrTooLarge) {
		return nil, fmt.Errorf("%s is over the %d-byte limit for a rules file; split it", path, maxRulesFileBytes)
	}
	return data, err
}

func (rs *Ruleset) add(r *prefixRule) {
	for _, first := range r.pattern[0] {
		rs.byFirst[first] = append(rs.byFirst[first], r)
	}
	rs.count++
}

// hostAllows reports whether the absolute program path may stand for name
// under host_executable: yes when no entry names it, else when listed.
func (rs *Ruleset) hostAllows(name, program, home string) bool {
	paths, ok := rs.hostExec[name]
	if !ok {
		return true
	}
	program = filepath.Clean(program)
	for _, p := range paths {
		if strings.HasPrefix(p, "~/") {
			if home == "" {
				continue
			}
			p = filepath.Join(home, p[2:])
		}
		if p == program {
			return true
		}
	}
	return false
}

// matches reports whether argv starts with the pattern, as moat applies
// rules: argv[0] matches a token exactly or, for a prompt or forbidden
// rule, by its base name (/opt/x/git is git: a stricter rule may not be
// dodged by a path). An allow rule takes an absolute path by base name only
// where host_executable permits it, as Codex does. A token only known at run
// time matches any position of a prompt or forbidden rule (it could be
// anything) and no position of an allow rule.
func (r *prefixRule) matches(rs *Ruleset, argv []arg, name, home string) bool {
	if len(argv) < len(r.pattern) {
		return false
	}
	for i, alts := range r.pattern {
		a := argv[i]
		if a.dyn {
			if r.decision == allow {
				return false
			}
			continue
		}
		if slices.Contains(alts, a.s) {
			continue
		}
		if i == 0 && slices.Contains(alts, name) {
			if r.decision != allow || (filepath.IsAbs(a.s) && rs.hostAllows(name, a.s, home)) {
				continue
			}
		}
		return false
	}
	return true
}

func (r *prefixRule) patternString() string {
	parts := make([]string, len(r.pattern))
	for i, alts := range r.pattern {
		if len(alts) == 1 {
			parts[i] = fmt.Sprintf("%q", alts[0])
		} else {
			parts[i] = "[" + strings.Join(quoteAll(alts), ", ") + "]"
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func quoteAll(l []string) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// fileRules applies the ruleset to one command.
func (j *judge) fileRules(args []arg, name string) {
	if j.rs == nil || len(j.rs.byFirst) == 0 {
		return
	}
	cands := j.rs.byFirst[name]
	if !args[0].dyn && args[0].s != name {
		cands = append(cands[:len(cands):len(cands)], j.rs.byFirst[args[0].s]...)
	}
	for _, r := range cands {
		if !r.matches(j.rs, args, name, j.home) {
			continue
		}
		msg := r.justification
		if msg == "" {
			msg = fmt.Sprintf("matches prefix_rule %s (decision %s)", r.patternString(), codexDecision(r.decision))
		}
		j.add(r.decision, "file.prefix-rule", r.source, "%s", msg)
	}
}

// networkRules applies prompt and forbidden network rules to hosts a
// command names. Allow rules grant nothing here: the profile's network does.
func (j *judge) networkRules(what string, hosts []string) {
	if j.rs == nil || len(j.rs.network) == 0 {
		return
	}
	for _, h := range hosts {
		h = bareHost(h)
		for _, nr := range j.rs.network {
			if nr.Host != h || nr.Decision == "allow" {
				continue
			}
			msg := nr.Justification
			if msg == "" {
				msg = fmt.Sprintf("network_rule for %s (%s) says %s", nr.Host, nr.Protocol, nr.Decision)
			}
			j.add(severityOfCodex(nr.Decision), "file.network-rule", nr.Source, "%s contacts %s: %s", what, h, msg)
		}
	}
}

// bareHost is a host without port or brackets, lowercase, without a
// trailing dot: the form network rules are kept in.
func bareHost(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
}

func codexDecision(s severity) string {
	return [...]string{"allow", "prompt", "forbidden"}[s]
}

func severityOfCodex(d string) severity {
	switch d {
	case "allow":
		return allow
	case "prompt":
		return prompt
	}
	return deny
}
