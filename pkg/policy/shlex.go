package policy

import (
	"errors"
	"strings"
)

// shlexSplit splits an example string the way Codex does (Rust's shlex
// crate, POSIX rules without any expansion): whitespace separates words,
// single quotes are literal, double quotes honour \$ \` \" \\ and
// backslash-newline, an unquoted backslash escapes the next character, and
// # at the start of a word begins a comment. $HOME stays "$HOME".
func shlexSplit(s string) ([]string, error) {
	var out []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				out = append(out, w.String())
				w.Reset()
				inWord = false
			}
		case c == '#' && !inWord:
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '\'':
			inWord = true
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("example string has invalid shell syntax: an unterminated single quote")
			}
			w.WriteString(s[i+1 : i+1+end])
			i += end + 1
		case c == '"':
			inWord = true
			closed := false
			for i++; i < len(s); i++ {
				d := s[i]
				if d == '"' {
					closed = true
					break
				}
				if d == '\\' && i+1 < len(s) {
					switch s[i+1] {
					case '$', '`', '"', '\\':
						w.WriteByte(s[i+1])
						i++
						continue
					case '\n':
						i++
						continue
					}
				}
				w.WriteByte(d)
			}
			if !closed {
				return nil, errors.New("example string has invalid shell syntax: an unterminated double quote")
			}
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("example string has invalid shell syntax: it ends in a backslash")
			}
			i++
			if s[i] != '\n' {
				inWord = true
				w.WriteByte(s[i])
			}
		default:
			inWord = true
			w.WriteByte(c)
		}
	}
	if inWord {
		out = append(out, w.String())
	}
	return out, nil
}
