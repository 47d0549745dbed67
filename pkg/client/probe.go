package client

import (
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// BusState is what a probe of a bus URL found.
type BusState int

const (
	BusAbsent     BusState = iota // nothing answers at the URL
	BusAdmits                     // a bus answers and admits the key probed with
	BusRefuses                    // a bus answers but refuses that key (or any key without one)
	BusUnreadable                 // something answers that is not a bus moat can judge
)

// Probe connects to url once, with the nkey seed at creds when it is not
// empty, and says what answered. It never retries: it is for `moat init`,
// which must not write keys a running bus will refuse, nor replace the keys
// a running bus uses.
func Probe(url, creds string) BusState {
	opts := []nats.Option{nats.Name("moat-probe"), nats.Timeout(time.Second), nats.NoReconnect()}
	if creds != "" {
		auth, err := nats.NkeyOptionFromSeed(creds)
		if err != nil {
			return BusUnreadable
		}
		opts = append(opts, auth)
	}
	nc, err := nats.Connect(url, opts...)
	if err == nil {
		nc.Close()
		return BusAdmits
	}
	if errors.Is(err, nats.ErrAuthorization) || strings.Contains(strings.ToLower(err.Error()), "authorization") {
		return BusRefuses
	}
	if errors.Is(err, nats.ErrNoServers) {
		return BusAbsent
	}
	return BusUnreadable
}
