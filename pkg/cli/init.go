package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/moatsec/moat/pkg/client"
	"github.com/moatsec/moat/pkg/home"
	"github.com/moatsec/moat/pkg/wire"
)

func runInit(ctx context.Context, e *env, args []string) int {
	fs, js, _ := e.flags("init", false)
	force := fs.Bool("force", false, "replace existing keys (refused while a bus admits them)")
	bus := fs.String("bus", os.Getenv(home.EnvBus), "bus to check before writing keys (env MOAT_BUS; default "+wire.DefaultBusURL+")")
	if code, ok := Parse(fs, args); !ok {
		return code
	}
	h, err := home.FromEnv()
	if err != nil {
		return e.fail(err)
	}
	url := *bus
	if url == "" {
		url = wire.DefaultBusURL
	}
	if err := guardInit(h, url, *force); err != nil {
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
	if os.Getenv(home.EnvHome) == "" {
		fmt.Fprintf(e.stdout, "every moat command and daemon of this user finds it there (MOAT_HOME unset)\n")
	}
	return ExitOK
}

// guardInit refuses the two inits that lock a running stack out: new keys
// while a bus at url runs with keys from another home (it would refuse them),
// and replacing the keys a running bus admits.
func guardInit(h home.Home, url string, force bool) error {
	_, err := os.Stat(h.CredsDir())
	exists := err == nil
	switch {
	case exists && !force:
		if client.Probe(url, h.Creds(home.RoleAdmin)) == client.BusAdmits {
			return fmt.Errorf("%s is already initialized and the bus at %s uses its keys: nothing to do (MOAT_HOME=%s)", h.Dir, url, h.Dir)
		}
		return fmt.Errorf("%s already holds credentials: every daemon and client uses them as MOAT_HOME=%s; pass --force to replace them (running daemons are locked out)", h.Dir, h.Dir)
	case exists && force:
		if client.Probe(url, h.Creds(home.RoleAdmin)) == client.BusAdmits {
			return fmt.Errorf("the bus at %s is running with the keys in %s: stop the stack before replacing them with --force", url, h.Dir)
		}
	case !force:
		if client.Probe(url, "") == client.BusRefuses {
			return fmt.Errorf("a bus already runs at %s with keys from another MOAT_HOME, and it would refuse new keys: export MOAT_HOME=<the directory that stack uses> (scripts/up prints it), or pass --force to make a separate home anyway", url)
		}
	}
	return nil
}
