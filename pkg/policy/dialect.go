package policy

import (
	"fmt"
	"sort"
	"strings"
)

// stripAnnotations blanks out the type annotations of Codex's dialect
// (starlark-rust with types), which go.starlark.net does not parse:
// `def f(x: str, y: int = 1) -> None:` and `x: int = 1` at statement level.
// An annotation is replaced by spaces, so every line and column stays where
// it was; starlark-rust only checks types, they never change what a file
// declares. Anything the scan does not recognise is left for the parser.
func stripAnnotations(src []byte) []byte {
	s := string(src)
	if !strings.Contains(s, ":") {
		return src
	}
	toks := scanTokens(s)
	out := []byte(s)
	blank := func(from, to int) {
		for i := from; i < to && i < len(out); i++ {
			if out[i] != '\n' {
				out[i] = ' '
			}
		}
	}
	depth := 0
	lineStart := true // the next token starts a statement
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch {
		case t.text == "\n":
			if depth == 0 {
				lineStart = true
			}
			continue
		case t.text == "(" || t.text == "[" || t.text == "{":
			depth++
		case t.text == ")" || t.text == "]" || t.text == "}":
			depth = max(0, depth-1)
		case lineStart && depth == 0 && t.text == "def":
			i = stripDef(toks, i, blank)
		case lineStart && depth == 0 && t.ident && !keyword[t.text] && i+1 < len(toks) && toks[i+1].text == ":":
			// x: T = v  or  x: T
			end := i + 2
			d := 0
			for ; end < len(toks); end++ {
				tt := toks[end].text
				if d == 0 && (tt == "=" || tt == "\n" || tt == ";") {
					break
				}
				switch tt {
				case "(", "[", "{":
					d++
				case ")", "]", "}":
					d--
				}
			}
			if end < len(toks) {
				blank(toks[i+1].pos, toks[end].pos)
				i = end - 1
			}
		}
		lineStart = t.text == ";"
	}
	return out
}

// stripDef blanks the annotations of one def header starting at toks[i]
// and returns the index of the header's closing colon.
func stripDef(toks []token, i int, blank func(from, to int)) int {
	j := i + 1
	if j+1 >= len(toks) || !toks[j].ident || toks[j+1].text != "(" {
		return i
	}
	j += 2
	depth := 1
	annot := -1 // where the current parameter's annotation starts
	for ; j < len(toks) && depth > 0; j++ {
		tt := toks[j].text
		switch {
		case tt == "(" || tt == "[" || tt == "{":
			depth++
		case tt == ")" || tt == "]" || tt == "}":
			depth--
			if depth == 0 && annot >= 0 {
				blank(annot, toks[j].pos)
				annot = -1
			}
		case depth == 1 && tt == ":" && annot == -1:
			annot = toks[j].pos
		case depth == 1 && (tt == "=" || tt == ",") && annot >= 0:
			blank(annot, toks[j].pos)
			annot = -1
		case depth == 1 && tt == "=" && annot == -1:
			annot = -2 // a default value follows: its colons (lambda) are not annotations
		case depth == 1 && tt == ",":
			annot = -1
		}
	}
	// j is just past the closing parenthesis: -> T before the colon.
	if j < len(toks) && toks[j].text == "->" {
		k := j + 1
		d := 0
		for ; k < len(toks); k++ {
			tt := toks[k].text
			if d == 0 && tt == ":" {
				break
			}
			switch tt {
			case "(", "[", "{":
				d++
			case ")", "]", "}":
				d--
			}
		}
		if k < len(toks) {
			blank(toks[j].pos, toks[k].pos)
			return k
		}
	}
	return j
}

// keyword are the words that start a statement which is not an assignment.
var keyword = map[string]bool{
	"if": true, "elif": true, "else": true, "for": true, "while": true, "def": true, "return": true,
	"pass": true, "break": true, "continue": true, "load": true, "lambda": true, "not": true, "in": true,
	"and": true, "or": true, "try": true, "except": true, "finally": true, "with": true, "class": true,
}

type token struct {
	text  string
	pos   int
	ident bool
}

// scanTokens splits Starlark source into identifiers, strings (as one
// token), operators and newlines; comments are dropped and a backslash-
// newline joins lines.
func scanTokens(s string) []token {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '\\' && i+1 < len(s) && s[i+1] == '\n':
			i += 2
		case c == '\n':
			toks = append(toks, token{text: "\n", pos: i})
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '"' || c == '\'':
			end := literalEnd(s, i)
			toks = append(toks, token{text: "\"", pos: i})
			i = end
		case isIdentStart(c) || (c >= '0' && c <= '9'):
			j := i
			for j < len(s) && isIdentChar(s[j]) {
				j++
			}
			if j < len(s) && (s[j] == '"' || s[j] == '\'') && len(s[i:j]) <= 2 && strings.Trim(strings.ToLower(s[i:j]), "rbf") == "" {
				end := literalEnd(s, j) // a prefixed string: r"", b'', …
				toks = append(toks, token{text: "\"", pos: i})
				i = end
				continue
			}
			toks = append(toks, token{text: s[i:j], pos: i, ident: isIdentStart(c)})
			i = j
		case strings.HasPrefix(s[i:], "->") || strings.HasPrefix(s[i:], "==") || strings.HasPrefix(s[i:], "!=") ||
			strings.HasPrefix(s[i:], "<=") || strings.HasPrefix(s[i:], ">=") || strings.HasPrefix(s[i:], "**") ||
			(i+1 < len(s) && s[i+1] == '=' && strings.IndexByte("+-*/%&|^", c) >= 0):
			toks = append(toks, token{text: s[i : i+2], pos: i})
			i += 2
		default:
			toks = append(toks, token{text: string(c), pos: i})
			i++
		}
	}
	return toks
}

// applyDecorators rewrites decorated functions, which go.starlark.net does
// not parse, into what they mean, keeping every line where it was:
//
//	@dec(x)               _moat_dec0 = dec(x)
//	def f():          →   def f():
//	    return 1              return 1
//	                      f = _moat_dec0(f)
//
// The assignment takes the first blank or comment-only line after the body
// (the usual blank line after a function), or the end of the file. Where
// the body runs straight into the next statement the decorator is left as
// it is, and the parser reports it at its line.
func applyDecorators(src []byte) []byte {
	s := string(src)
	if !strings.Contains(s, "@") {
		return src
	}
	toks := scanTokens(s)
	type edit struct {
		at, end int // replace s[at:end]
		text    string
	}
	var edits []edit
	used := map[int]bool{} // lines taken by an assignment
	n := 0
	depth := 0
	lineStart := true
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch t.text {
		case "(", "[", "{":
			depth++
		case ")", "]", "}":
			depth = max(0, depth-1)
		}
		if t.text == "\n" {
			lineStart = depth == 0
			continue
		}
		if !(lineStart && depth == 0 && t.text == "@") {
			lineStart = false
			continue
		}
		// One or more decorator lines, then def NAME at the same column.
		indent := column(s, t.pos)
		var decs []int // token index of each @
		k := i
		for k < len(toks) && toks[k].text == "@" && column(s, toks[k].pos) == indent {
			decs = append(decs, k)
			k = nextLine(toks, k)
		}
		if k+1 >= len(toks) || toks[k].text != "def" || column(s, toks[k].pos) != indent || !toks[k+1].ident {
			i = k - 1
			lineStart = true
			continue
		}
		name := toks[k+1].text
		at, ok := bodyEnd(s, toks, k, indent)
		if !ok || used[at] {
			i = k
			lineStart = false
			continue
		}
		used[at] = true
		apply := name
		for d := len(decs) - 1; d >= 0; d-- {
			apply = fmt.Sprintf("_moat_dec%d(%s)", n+d, apply)
		}
		for d, di := range decs {
			edits = append(edits, edit{toks[di].pos, toks[di].pos + 1, fmt.Sprintf("_moat_dec%d = ", n+d)})
		}
		n += len(decs)
		line := strings.Repeat(" ", indent) + name + " = " + apply
		if at == len(s) {
			if !strings.HasSuffix(s, "\n") {
				line = "\n" + line
			}
			edits = append(edits, edit{at, at, line + "\n"})
		} else {
			end := at + strings.IndexByte(s[at:], '\n')
			if end < at {
				end = len(s)
			}
			if c := strings.TrimSpace(s[at:end]); c != "" {
				line += "  " + c // the comment the line held
			}
			edits = append(edits, edit{at, end, line})
		}
		i = k
		lineStart = false
	}
	if len(edits) == 0 {
		return src
	}
	var out strings.Builder
	last := 0
	sort.Slice(edits, func(a, b int) bool { return edits[a].at < edits[b].at })
	for _, e := range edits {
		out.WriteString(s[last:e.at])
		out.WriteString(e.text)
		last = e.end
	}
	out.WriteString(s[last:])
	return []byte(out.String())
}

// column is the column of position pos in s.
func column(s string, pos int) int {
	return pos - strings.LastIndexByte(s[:pos], '\n') - 1
}

// nextLine returns the index of the first token of the next logical line
// after toks[i] (a newline at bracket depth 0 ends one).
func nextLine(toks []token, i int) int {
	depth := 0
	for ; i < len(toks); i++ {
		switch toks[i].text {
		case "(", "[", "{":
			depth++
		case ")", "]", "}":
			depth = max(0, depth-1)
		case "\n":
			if depth == 0 {
				for i < len(toks) && toks[i].text == "\n" {
					i++
				}
				return i
			}
		}
	}
	return i
}

// bodyEnd finds where the assignment after the function at toks[k] (def,
// at column indent) goes: the start of the first blank or comment-only
// line after its body, or len(s) when the body ends the file. ok is false
// when the body runs straight into the next statement.
func bodyEnd(s string, toks []token, k, indent int) (int, bool) {
	last := k // the first token of the body's last logical line
	h := nextLine(toks, k)
	for h < len(toks) && column(s, toks[h].pos) > indent {
		last = h
		h = nextLine(toks, h)
	}
	if h >= len(toks) {
		return len(s), true
	}
	end := lineEnd(s, toks, last) // the newline ending the body
	next := strings.LastIndexByte(s[:toks[h].pos], '\n') + 1
	if end+1 < next {
		return end + 1, true
	}
	return 0, false
}

// lineEnd is the position of the newline that ends the logical line
// starting at toks[i], or len(s).
func lineEnd(s string, toks []token, i int) int {
	depth := 0
	for ; i < len(toks); i++ {
		switch toks[i].text {
		case "(", "[", "{":
			depth++
		case ")", "]", "}":
			depth = max(0, depth-1)
		case "\n":
			if depth == 0 {
				return toks[i].pos
			}
		}
	}
	return len(s)
}
