package client

import (
	"flag"
	"os"
	"time"

	"github.com/moatsec/moat/pkg/home"
)

// Flags registers the flags every bus client shares (--bus, --creds, --call-timeout) on
// fs and returns a function that yields the filled Options after parsing.
func Flags(fs *flag.FlagSet, role string) func(h home.Home) Options {
	var o Options
	fs.StringVar(&o.URL, "bus", os.Getenv(home.EnvBus), "bus URL, or a cluster's URLs comma-separated (env MOAT_BUS; default nats://127.0.0.1:4222)")
	fs.StringVar(&o.Creds, "creds", os.Getenv(home.EnvCreds), "nkey seed file (env MOAT_CREDS; default MOAT_HOME/creds/"+role+".nk)")
	fs.DurationVar(&o.Timeout, "call-timeout", DefaultTimeout, "deadline of each call to a service")
	return func(h home.Home) Options {
		o.Role = role
		return o.Fill(h)
	}
}

// DaemonWait is how long a daemon keeps trying to reach the bus at start, so
// foreman may start it before busd is ready.
const DaemonWait = 30 * time.Second
