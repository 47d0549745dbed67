package policy

import (
	"strings"
)

// desugarFStrings rewrites the f-strings of a rules file into calls of
// str.format, which go.starlark.net understands: f"a{x}b{y!r}" becomes
// "a{}b{!r}".format((x), (y)). Codex parses rules with starlark-rust's
// extended dialect and f-strings on; go.starlark.net has no f-strings.
//
// Only string literals with an f prefix change, and no newline is added or
// removed, so every line number a later error names is the line in the file.
// Text that is not understood (an unterminated literal, an unbalanced
// brace) is left as it is for the parser to report.
func desugarFStrings(src []byte) []byte {
	s := string(src)
	if !strings.ContainsAny(s, "fF") {
		return src
	}
	var out strings.Builder
	changed := false
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '#':
			end := strings.IndexByte(s[i:], '\n')
			if end < 0 {
				end = len(s) - i
			}
			out.WriteString(s[i : i+end])
			i += end
		case c == '\'' || c == '"':
			end := literalEnd(s, i)
			out.WriteString(s[i:end])
			i = end
		case isIdentStart(c):
			j := i
			for j < len(s) && isIdentChar(s[j]) {
				j++
			}
			word := s[i:j]
			if j < len(s) && (s[j] == '"' || s[j] == '\'') && isFPrefix(word) {
				raw := strings.ContainsAny(word, "rR")
				end := literalEnd(s, j)
				if rewritten, ok := rewriteFString(s[j:end], raw); ok {
					if raw {
						out.WriteByte('r')
					}
					out.WriteString(rewritten)
					changed = true
					i = end
					continue
				}
			}
			out.WriteString(word)
			i = j
		default:
			out.WriteByte(c)
			i++
		}
	}
	if !changed {
		return src
	}
	return []byte(out.String())
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80
}

func isIdentChar(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

func isFPrefix(w string) bool {
	switch strings.ToLower(w) {
	case "f", "fr", "rf":
		return true
	}
	return false
}

// literalEnd returns the index just past the string literal starting at the
// quote s[i], or len(s) when it never ends.
func literalEnd(s string, i int) int {
	q := s[i]
	triple := strings.HasPrefix(s[i:], strings.Repeat(string(q), 3))
	j := i + 1
	if triple {
		j = i + 3
	}
	for j < len(s) {
		switch {
		case s[j] == '\\' && j+1 < len(s): // even a raw literal cannot end at \"
			j += 2
		case triple && strings.HasPrefix(s[j:], strings.Repeat(string(q), 3)):
			return j + 3
		case !triple && s[j] == q:
			return j + 1
		case !triple && s[j] == '\n':
			return j // unterminated: let the parser say so
		default:
			j++
		}
	}
	return len(s)
}

// rewriteFString turns one f-string literal (quotes included, prefix not)
// into a format call.
func rewriteFString(lit string, raw bool) (string, bool) {
	q := lit[:1]
	if strings.HasPrefix(lit, strings.Repeat(q, 3)) {
		q = lit[:3]
	}
	if len(lit) < 2*len(q) || !strings.HasSuffix(lit, q) {
		return "", false
	}
	body := lit[len(q) : len(lit)-len(q)]
	var format strings.Builder
	var exprs []string
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c == '\\' && !raw && i+1 < len(body):
			format.WriteString(body[i : i+2])
			i++
		case c == '{' && i+1 < len(body) && body[i+1] == '{', c == '}' && i+1 < len(body) && body[i+1] == '}':
			format.WriteString(body[i : i+2])
			i++
		case c == '}':
			return "", false // a lone }
		case c == '{':
			end, ok := exprEnd(body, i+1)
			if !ok {
				return "", false
			}
			expr := body[i+1 : end]
			conv := ""
			if n := len(expr); n >= 2 && expr[n-2] == '!' && (expr[n-1] == 'r' || expr[n-1] == 's') {
				conv, expr = expr[n-2:], expr[:n-2]
			}
			if strings.TrimSpace(expr) == "" {
				return "", false
			}
			format.WriteString("{" + conv + "}")
			exprs = append(exprs, "("+expr+")")
			i = end
		default:
			format.WriteByte(c)
		}
	}
	return q + format.String() + q + ".format(" + strings.Join(exprs, ", ") + ")", true
}

// exprEnd finds the } closing an f-string expression that starts at i,
// skipping nested brackets and quoted strings.
func exprEnd(body string, i int) (int, bool) {
	depth := 0
	for ; i < len(body); i++ {
		switch c := body[i]; c {
		case '(', '[', '{':
			depth++
		case ')', ']':
			depth--
		case '}':
			if depth == 0 {
				return i, true
			}
			depth--
		case '\'', '"':
			end := strings.IndexByte(body[i+1:], c)
			if end < 0 {
				return 0, false
			}
			i += end + 1
		}
	}
	return 0, false
}
