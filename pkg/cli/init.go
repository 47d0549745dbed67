package cli

import (
	"context"
	"fmt"

	"github.com/moatsec/moat/pkg/home"
)

func runInit(ctx context.Context, e *env, args []string) int {
	fs, js, _ := e.flags("init", false)
	force := fs.Bool("force", false, "replace existing keys (running daemons are locked out until restarted)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	h, err := home.FromEnv()
	if err != nil {
		return e.fail(err)
	}
	if err := h.Init(*force); err != nil {
		return e.fail(err)
	}
	if *js {
		creds := map[string]string{}
		for _, r := range home.Roles {
			creds[r] = h.Creds(r)
		}
		return e.json(map[string]any{"home": h.Dir, "creds": creds, "keys": h.KeysDir(), "rules": h.RulesDir()})
	}
	fmt.Fprintf(e.stdout, "initialized %s\n  creds/  one key for each of %d components (mode 0600)\n  keys/   audit HMAC and checkpoint signing keys\n  rules/  policy rules (empty)\n",
		h.Dir, len(home.Roles))
	return ExitOK
}
