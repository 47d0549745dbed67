// Package gitconfig reads git's configuration file format, as git does, far
// enough to tell which variables make git run a program: moat checks the
// repositories a sandboxed command created or changed before the host's git
// (outside any sandbox) reads them.
//
// [Parse] follows git's grammar: sections "[name]", "[name "sub"]" and the
// old "[name.sub]"; variables with or without "= value"; quotes, escapes,
// line continuations and comments. Anything it cannot read is an error, and
// callers treat an unreadable file as dangerous: git might read it otherwise.
package gitconfig

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Entry is one variable. Section and Name are lowercase (git compares them
// without case); Subsection is kept as written.
type Entry struct {
	Section, Subsection, Name string
	Value                     string
	NoValue                   bool // "name" alone: a boolean true
}

// Key is section[.subsection].name.
func (e Entry) Key() string {
	if e.Subsection != "" {
		return e.Section + "." + e.Subsection + "." + e.Name
	}
	return e.Section + "." + e.Name
}

// Parse reads a configuration file.
func Parse(data []byte) ([]Entry, error) {
	p := &parser{s: string(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))), line: 1}
	var out []Entry
	var sec, sub string
	for {
		p.skipSpace()
		c, ok := p.peek()
		if !ok {
			return out, nil
		}
		switch {
		case c == '\n':
			p.next()
		case c == '#' || c == ';':
			p.skipLine()
		case c == '[':
			var err error
			if sec, sub, err = p.header(); err != nil {
				return nil, p.errorf("%v", err)
			}
		case isAlpha(c):
			if sec == "" {
				return nil, p.errorf("variable outside any section")
			}
			e, err := p.variable()
			if err != nil {
				return nil, p.errorf("%v", err)
			}
			e.Section, e.Subsection = sec, sub
			out = append(out, e)
		default:
			return nil, p.errorf("unexpected %q", c)
		}
	}
}

type parser struct {
	s    string
	i    int
	line int
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("line %d: %s", p.line, fmt.Sprintf(format, args...))
}

func (p *parser) peek() (byte, bool) {
	if p.i >= len(p.s) {
		return 0, false
	}
	return p.s[p.i], true
}

func (p *parser) next() byte {
	c := p.s[p.i]
	p.i++
	if c == '\n' {
		p.line++
	}
	return c
}

func (p *parser) skipSpace() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\r') {
		p.i++
	}
}

func (p *parser) skipLine() {
	for p.i < len(p.s) && p.s[p.i] != '\n' {
		p.i++
	}
}

// header reads "[section]", "[section "sub"]" or "[section.sub]".
func (p *parser) header() (string, string, error) {
	p.next() // [
	start := p.i
	for p.i < len(p.s) && (isAlnum(p.s[p.i]) || p.s[p.i] == '-' || p.s[p.i] == '.') {
		p.i++
	}
	name := strings.ToLower(p.s[start:p.i])
	if name == "" {
		return "", "", errors.New("empty section name")
	}
	c, ok := p.peek()
	switch {
	case ok && c == ']':
		p.next()
		if sec, sub, dotted := strings.Cut(name, "."); dotted {
			return sec, sub, nil
		}
		return name, "", nil
	case ok && (c == ' ' || c == '\t'):
		p.skipSpace()
		if c, ok := p.peek(); !ok || c != '"' {
			return "", "", errors.New("bad section header")
		}
		p.next()
		var sub strings.Builder
		for {
			if p.i >= len(p.s) || p.s[p.i] == '\n' {
				return "", "", errors.New("unterminated subsection")
			}
			c := p.next()
			if c == '"' {
				break
			}
			if c == '\\' {
				if p.i >= len(p.s) || p.s[p.i] == '\n' {
					return "", "", errors.New("unterminated subsection")
				}
				c = p.next()
			}
			sub.WriteByte(c)
		}
		if c, ok := p.peek(); !ok || c != ']' {
			return "", "", errors.New("bad section header")
		}
		p.next()
		if strings.Contains(name, ".") {
			return "", "", errors.New("bad section header")
		}
		return name, sub.String(), nil
	}
	return "", "", errors.New("bad section header")
}

// variable reads "name [= value]" up to the end of its (continued) line.
func (p *parser) variable() (Entry, error) {
	start := p.i
	for p.i < len(p.s) && (isAlnum(p.s[p.i]) || p.s[p.i] == '-') {
		p.i++
	}
	e := Entry{Name: strings.ToLower(p.s[start:p.i])}
	p.skipSpace()
	c, ok := p.peek()
	if !ok || c == '\n' || c == '#' || c == ';' {
		e.NoValue = true
		p.skipLine()
		return e, nil
	}
	if c != '=' {
		return e, fmt.Errorf("bad variable %q", e.Name)
	}
	p.next()
	v, err := p.value()
	e.Value = v
	return e, err
}

// value reads a value as git does (config.c's parse_value): quotes,
// escapes, continuations; blanks inside kept as spaces, trailing ones
// dropped; a comment ends it.
func (p *parser) value() (string, error) {
	var b strings.Builder
	quoted := false
	space := 0
	for p.i < len(p.s) {
		c := p.next()
		switch {
		case c == '\n':
			if quoted {
				return "", errors.New("unterminated quote")
			}
			return b.String(), nil
		case !quoted && (c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'):
			if b.Len() > 0 {
				space++
			}
			continue
		case !quoted && (c == '#' || c == ';'):
			p.skipLine()
			return b.String(), nil
		}
		b.WriteString(strings.Repeat(" ", space))
		space = 0
		switch c {
		case '\\':
			if p.i >= len(p.s) {
				return "", errors.New("backslash at the end")
			}
			switch d := p.next(); d {
			case '\n': // continuation
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'b':
				b.WriteByte('\b')
			case '\\', '"':
				b.WriteByte(d)
			default:
				return "", fmt.Errorf("bad escape \\%c", d)
			}
		case '"':
			quoted = !quoted
		default:
			b.WriteByte(c)
		}
	}
	if quoted {
		return "", errors.New("unterminated quote")
	}
	return b.String(), nil
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isAlnum(c byte) bool { return isAlpha(c) || c >= '0' && c <= '9' }

// IsBool reports whether git reads v (of an entry) as a boolean.
func IsBool(e Entry) bool {
	if e.NoValue {
		return true
	}
	switch strings.ToLower(e.Value) {
	case "", "true", "false", "yes", "no", "on", "off":
		return true
	}
	_, err := strconv.ParseInt(e.Value, 0, 64)
	return err == nil
}
