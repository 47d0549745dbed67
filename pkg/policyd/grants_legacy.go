package policyd

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// LegacyGrantRules is the file in the rules directory where policyd once
// appended the prefix_rule of each "rule" grant. policyd loads that
// directory, so each such line allowed its command in every workspace and
// profile, and a revoke left it there.
const LegacyGrantRules = "grants.rules"

// legacyGrantMark is how each line policyd wrote there began its
// justification.
const legacyGrantMark = `justification = "moat grant `

// RetireLegacyGrantRules takes the old grants file out of rulesDir before
// policyd loads it: a file holding nothing but lines policyd wrote is
// renamed to keep (outside what is loaded; the grants themselves are in
// the MOAT_GRANTS bucket, each scoped as it was made) and its new name
// returned. A file mixing such lines with other rules is refused — policyd
// does not start — since loading it would keep every old grant global. A
// file without such lines is someone's own rules and is left alone.
func RetireLegacyGrantRules(rulesDir, keep string) (string, error) {
	path := filepath.Join(rulesDir, LegacyGrantRules)
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	grants, other := 0, 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), len(data)+1)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "prefix_rule(") && strings.Contains(line, legacyGrantMark):
			grants++
		default:
			other++
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	switch {
	case grants == 0:
		return "", nil
	case other > 0:
		return "", fmt.Errorf("%s holds %d rule grants an older policyd wrote there, where each allows its command in every workspace and profile, "+
			"mixed with %d other lines: move your own rules to another file in %s and delete it (the grants are kept in the MOAT_GRANTS bucket: moat grants lists them)",
			path, grants, other, rulesDir)
	}
	to := keep
	if _, err := os.Lstat(to); err == nil {
		to = fmt.Sprintf("%s.%d", keep, os.Getpid())
	}
	if err := os.Rename(path, to); err != nil {
		return "", fmt.Errorf("move %s (rule grants an older policyd wrote, each global) out of the rules: %w; delete it by hand", path, err)
	}
	return to, nil
}
