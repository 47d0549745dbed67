package policy

import (
	"strings"

	"github.com/moatsec/moat/pkg/smallfile"
)

// maxSedScript bounds a sed -f script read to judge it.
const maxSedScript = 64 << 10

// sedCmd judges sed: a script that only edits text reads; its e command and
// s///e flag run commands (the command text is judged as a shell script, the
// pattern space as data is a prompt), its w and W commands and s///w flag
// write files, -i writes the files it edits, r and R read.
func sedCmd(j *judge, name string, args []arg, dir string, in stdin) {
	var scripts []arg
	var ops []arg
	inPlace, sandboxed, explicit := false, false, false
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a.dyn || a.s == "-" || a.s == "" || a.s[0] != '-' {
			ops = append(ops, a)
			continue
		}
		if a.s == "--" {
			ops = append(ops, args[i+1:]...)
			break
		}
		if strings.HasPrefix(a.s, "--") {
			long, val, joined := strings.Cut(a.s[2:], "=")
			switch {
			case abbrev(long, "expression", 1), abbrev(long, "file", 2):
				explicit = true
				if !joined && i+1 < len(args) {
					i++
					val = args[i].s
					if args[i].dyn {
						scripts = append(scripts, args[i])
						continue
					}
				}
				if abbrev(long, "file", 2) {
					scripts = append(scripts, j.sedFile(arg{s: val}, dir))
				} else {
					scripts = append(scripts, arg{s: val})
				}
			case abbrev(long, "in-place", 3):
				inPlace = true
			case abbrev(long, "sandbox", 2):
				sandboxed = true
			case abbrev(long, "line-length", 2):
				if !joined {
					i++
				}
			}
			continue
		}
		cluster := a.s[1:]
		for k := 0; k < len(cluster); k++ {
			c := cluster[k]
			if c == 'i' {
				inPlace = true
				break // the rest is a backup suffix
			}
			if c != 'e' && c != 'f' && c != 'l' {
				continue
			}
			val := arg{s: cluster[k+1:]}
			if val.s == "" {
				if i+1 >= len(args) {
					break
				}
				i++
				val = args[i]
			}
			switch c {
			case 'e':
				explicit = true
				scripts = append(scripts, val)
			case 'f':
				explicit = true
				scripts = append(scripts, j.sedFile(val, dir))
			}
			break
		}
	}
	if !explicit && len(ops) > 0 {
		scripts, ops = append(scripts, ops[0]), ops[1:]
	}
	acted := false
	for _, s := range scripts {
		if s.dyn {
			j.add(prompt, "exec.inline-code", "", "sed runs a script only known at run time (%s)", short(s.s))
			acted = true
			continue
		}
		if !sandboxed && j.sedScript(s.s, dir) {
			acted = true
		}
	}
	if inPlace {
		j.writes("sed -i", ops, dir)
		return
	}
	if !acted {
		j.add(allow, "safe.read-only", "", "sed without -i, e or w writes only to its output")
	}
}

// sedFile reads a sed -f script to judge it; one that cannot be read is
// only known at run time.
func (j *judge) sedFile(f arg, dir string) arg {
	if f.dyn || f.s == "-" || f.s == "/dev/stdin" {
		return arg{s: "sed -f " + f.s, dyn: true}
	}
	data, err := smallfile.Read(j.abs(f.s, dir), maxSedScript)
	if err != nil {
		return arg{s: "sed -f " + f.s, dyn: true}
	}
	return arg{s: string(data)}
}

// sedScript walks a GNU sed script for the commands that escape it and
// reports whether it found one.
func (j *judge) sedScript(s, dir string) bool {
	found := false
	i := 0
	restOfLine := func() string {
		end := strings.IndexByte(s[i:], '\n')
		if end < 0 {
			end = len(s) - i
		}
		v := s[i : i+end]
		i += end
		return v
	}
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == ';' || c == '!' || c == '{' || c == '}' || c == ',' || c == '$' || c == '~' || c == '+' || (c >= '0' && c <= '9'):
			i++
		case c == '/' || c == '\\':
			// an address: /re/ or \cREc
			delim := byte('/')
			if c == '\\' && i+1 < len(s) {
				i++
				delim = s[i]
			}
			i = sedDelimEnd(s, i+1, delim)
			for i < len(s) && (s[i] == 'I' || s[i] == 'M') {
				i++
			}
		case c == '#' || c == ':':
			restOfLine()
		case c == 'a' || c == 'i' || c == 'c':
			i++
			text := restOfLine()
			for strings.HasSuffix(text, "\\") && i < len(s) { // a\ continued lines
				i++
				text = restOfLine()
			}
		case c == 'b' || c == 't' || c == 'T':
			i++
			for i < len(s) && s[i] != ';' && s[i] != '\n' && s[i] != '}' {
				i++
			}
		case c == 'r' || c == 'R':
			i++
			j.readDeniedArg(arg{s: strings.TrimSpace(restOfLine())}, dir)
		case c == 'w' || c == 'W':
			i++
			j.write("sed "+string(c), arg{s: strings.TrimSpace(restOfLine())}, dir)
			found = true
		case c == 'e':
			i++
			found = true
			if cmd := strings.TrimSpace(restOfLine()); cmd != "" {
				j.script(cmd, dir)
			} else {
				j.add(prompt, "exec.inline-code", "", "sed e runs the text it reads as a command")
			}
		case c == 's' || c == 'y':
			if i+1 >= len(s) {
				i++
				continue
			}
			delim := s[i+1]
			i = sedDelimEnd(s, i+2, delim)
			i = sedDelimEnd(s, i, delim)
			if c == 'y' {
				continue
			}
			for i < len(s) {
				f := s[i]
				if f == 'e' {
					j.add(prompt, "exec.inline-code", "", "sed s///e runs the text it produces as a command")
					found = true
				}
				if f == 'w' {
					i++
					j.write("sed s///w", arg{s: strings.TrimSpace(restOfLine())}, dir)
					found = true
					break
				}
				if f == ';' || f == '\n' || f == '}' || f == ' ' || f == '#' {
					break
				}
				i++
			}
		default: // p, d, q, l, =, n, N, g, G, h, H, x, z, D, P, F, v, L, Q: nothing escapes
			i++
		}
	}
	return found
}

// sedDelimEnd returns the index after the unescaped delim at or after i.
func sedDelimEnd(s string, i int, delim byte) int {
	for i < len(s) {
		switch s[i] {
		case '\\':
			i += 2
		case delim:
			return i + 1
		case '\n':
			if delim != '\n' {
				return i // unterminated: stop at the line
			}
			return i + 1
		default:
			i++
		}
	}
	return len(s)
}

// abbrev reports whether a long option as written names full, which
// getopt_long takes abbreviated to any unambiguous prefix; min is the
// shortest prefix that is unambiguous for the program.
func abbrev(written, full string, min int) bool {
	return len(written) >= min && strings.HasPrefix(full, written)
}
