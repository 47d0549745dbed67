package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/moatsec/moat/pkg/wire"
)

// Sanitizer removes what must never reach a disk from an event: user names
// become keyed HMAC tokens (the same name, the same token, unreadable
// without the key), home directories become ~, and secrets become
// [REDACTED:<rule>]. Every publisher sanitizes before an event leaves the
// process, and auditd again before it stores it. Sanitizing twice changes
// nothing the first pass left.
type Sanitizer struct {
	key   []byte
	homes []string // longest first
	clean textCache
}

// NewSanitizer keys user tokens with key; homes are replaced by ~.
func NewSanitizer(key []byte, homes ...string) *Sanitizer {
	s := &Sanitizer{key: key}
	for _, h := range homes {
		h = strings.TrimRight(h, "/")
		if h != "" && h != "/" {
			s.homes = append(s.homes, h)
		}
	}
	sort.Slice(s.homes, func(i, j int) bool { return len(s.homes[i]) > len(s.homes[j]) })
	return s
}

// LoadSanitizer reads the HMAC key at keyFile (hex, as moat init writes it).
// The process's home and every home in /etc/passwd are replaced by ~.
func LoadSanitizer(keyFile string) (*Sanitizer, error) {
	data, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("audit key: %w; run `moat init`", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(key) < 16 {
		return nil, fmt.Errorf("audit key %s is not a hex key of 16 bytes or more", keyFile)
	}
	return NewSanitizer(key, systemHomes()...), nil
}

func systemHomes() []string {
	var homes []string
	if h, err := os.UserHomeDir(); err == nil {
		homes = append(homes, h)
	}
	if data, err := os.ReadFile("/etc/passwd"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Split(line, ":")
			if len(f) >= 7 && (strings.HasPrefix(f[5], "/home/") || strings.HasPrefix(f[5], "/Users/") || f[5] == "/root") {
				homes = append(homes, f[5])
			}
		}
	}
	return homes
}

// UserToken is the keyed token that stands for name in the audit trail
// (what `moat audit hash NAME` prints).
func (s *Sanitizer) UserToken(name string) string {
	if name == "" || strings.HasPrefix(name, "user:") {
		return name
	}
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(name))
	return "user:" + hex.EncodeToString(m.Sum(nil)[:16])
}

// Event sanitizes ev, then bounds it (see [Bound]). Its argv, reasons and
// details are replaced by sanitized copies, never rewritten where they lie:
// a daemon builds events from the very slices and maps it runs with, and
// those must stay as the caller gave them.
func (s *Sanitizer) Event(ev *wire.AuditEvent) {
	ev.User = s.UserToken(ev.User)
	if ev.Argv != nil {
		argv := make([]string, len(ev.Argv))
		for i, a := range ev.Argv {
			argv[i] = s.Text(a)
		}
		ev.Argv = argv
	}
	ev.Cwd = s.Text(ev.Cwd)
	if ev.Reasons != nil {
		reasons := make([]wire.Reason, len(ev.Reasons))
		for i, r := range ev.Reasons {
			r.Message = s.Text(r.Message)
			reasons[i] = r
		}
		ev.Reasons = reasons
	}
	if ev.Detail != nil {
		detail := make(map[string]any, len(ev.Detail))
		for k, v := range ev.Detail {
			detail[k] = s.value(k, v)
		}
		ev.Detail = detail
	}
	Bound(ev)
}

// value sanitizes one detail value; an environment-like map is redacted by
// its keys' names.
func (s *Sanitizer) value(key string, v any) any {
	switch x := v.(type) {
	case string:
		if secretKey(key) {
			return "[REDACTED:assignment]"
		}
		return s.Text(x)
	case []string:
		out := make([]string, len(x))
		for i, e := range x {
			out[i] = s.Text(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = s.value(key, e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = s.value(k, e)
		}
		return out
	case map[string]string:
		out := make(map[string]string, len(x))
		for k, e := range x {
			if secretKey(k) {
				out[k] = "[REDACTED:assignment]"
			} else {
				out[k] = s.Text(e)
			}
		}
		return out
	}
	return v
}

// Text sanitizes one string: homes, then every secret rule whose keyword
// appears (the keyword check keeps clean text cheap). Short texts that no
// rule touches are remembered (see textCache): the same reasons, rule ids,
// workspaces and commands come again and again.
func (s *Sanitizer) Text(t string) string {
	if out, ok := s.clean.get(t); ok {
		return out
	}
	out, hit := s.text(t)
	if !hit {
		s.clean.put(t, out)
	}
	return out
}

// text is Text without the cache; hit reports whether a secret rule fired.
func (s *Sanitizer) text(t string) (out string, hit bool) {
	for _, h := range s.homes {
		if strings.Contains(t, h) {
			t = replaceHome(t, h)
		}
	}
	lower := ""
	for _, r := range rules() {
		if r.hit(t, &lower) {
			t = r.re.ReplaceAllString(t, r.repl)
			lower, hit = "", true
		}
	}
	return t, hit
}

// textCache remembers texts no secret rule touched, with what Text made
// of them (homes replaced). It holds no secret the rules know, is bounded
// (cacheTexts texts of at most cacheTextBytes, with their results: 2 MiB),
// and starts over when full. Safe for concurrent use.
type textCache struct {
	mu sync.Mutex
	m  map[string]string
}

const (
	cacheTexts     = 4096
	cacheTextBytes = 256
)

func (c *textCache) get(t string) (string, bool) {
	if len(t) > cacheTextBytes {
		return "", false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out, ok := c.m[t]
	return out, ok
}

func (c *textCache) put(t, out string) {
	if len(t) > cacheTextBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= cacheTexts {
		c.m = make(map[string]string, 64)
	}
	c.m[t] = out
}

// replaceHome replaces h where it is a whole path prefix (/home/al, not /home/alice).
func replaceHome(t, h string) string {
	var b strings.Builder
	for {
		i := strings.Index(t, h)
		if i < 0 {
			b.WriteString(t)
			return b.String()
		}
		end := i + len(h)
		if end == len(t) || t[end] == '/' || t[end] == ' ' || t[end] == ':' || t[end] == '"' || t[end] == '\'' {
			b.WriteString(t[:i])
			b.WriteString("~")
		} else {
			b.WriteString(t[:end])
		}
		t = t[end:]
	}
}

// rule is one secret pattern.
type rule struct {
	keywords []string // at least one must appear (case-insensitive when lower)
	re       *regexp.Regexp
	repl     string
}

// hit reports whether a keyword of r appears in t; a lowercase keyword
// matches in any case (lower caches t lowered, computed once per text).
func (r *rule) hit(t string, lower *string) bool {
	for _, k := range r.keywords {
		if strings.Contains(t, k) {
			return true
		}
		if k[0] >= 'a' && k[0] <= 'z' || k[0] == '-' || k[0] == '_' {
			if *lower == "" {
				*lower = strings.ToLower(t)
			}
			if strings.Contains(*lower, k) {
				return true
			}
		}
	}
	return false
}

// The rules, each named in its replacement ([REDACTED:<id>]); each has
// true- and false-positive vectors in the tests.
var rules = sync.OnceValue(func() []*rule {
	red := func(id string) string { return "[REDACTED:" + id + "]" }
	return []*rule{
		{[]string{"PRIVATE KEY"}, regexp.MustCompile(`-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)`), red("private-key")},
		{[]string{"AKIA", "ASIA", "ABIA", "ACCA", "A3T"}, regexp.MustCompile(`\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b`), red("aws-access-key")},
		{[]string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"}, regexp.MustCompile(`\b(?:gh[pousr]_[0-9A-Za-z]{36}|github_pat_[0-9A-Za-z_]{82})\b`), red("github-token")},
		{[]string{"glpat-"}, regexp.MustCompile(`\bglpat-[0-9A-Za-z_-]{20,}`), red("gitlab-token")},
		{[]string{"xox"}, regexp.MustCompile(`\bxox[baprse]-[0-9A-Za-z-]{10,}`), red("slack-token")},
		{[]string{"eyJ"}, regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}`), red("jwt")},
		{[]string{"bearer"}, regexp.MustCompile(`(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{12,}`), "${1} " + red("bearer")},
		{[]string{"://"}, regexp.MustCompile(`\b([a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+):[^/\s@]+@`), "${1}:" + red("url-credentials") + "@"},
		{[]string{"password", "passwd", "secret", "token", "_key", "apikey", "api_key"},
			regexp.MustCompile(`(?i)\b([A-Za-z0-9_.-]*(?:password|passwd|secret|token|api_?key|_key))(\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s"',;]+)`), "${1}${2}" + red("assignment")},
		{[]string{"--password", "--passwd", "--token", "--secret", "--api-key", "--apikey"},
			regexp.MustCompile(`(?i)(--(?:password|passwd|token|secret|api-?key|[a-z-]*-token|[a-z-]*-secret))(\s+|=)("[^"]*"|'[^']*'|[^\s"',;]+)`), "${1}${2}" + red("flag")},
	}
})

// secretKey reports whether a variable or detail name holds a secret.
func secretKey(k string) bool {
	u := strings.ToUpper(k)
	for _, s := range []string{"PASSWORD", "PASSWD", "SECRET", "TOKEN", "API_KEY", "APIKEY", "PRIVATE_KEY", "ACCESS_KEY", "CREDENTIAL"} {
		if strings.Contains(u, s) {
			return true
		}
	}
	return strings.HasSuffix(u, "_KEY")
}
