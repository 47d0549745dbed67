//go:build !linux && !darwin

package sandbox

import (
	"context"
	"runtime"

	"github.com/moatsec/moat/pkg/wire"
)

// Check refuses every profile but trusted, and trusted narrowed to less
// network: this system has no isolation moat knows how to use.
func Check(p *wire.Profile) error {
	if p.Base != "trusted" {
		return refuse("%s has no sandbox moat can use: only the trusted profile runs here (timeout, output caps and audit only)", runtime.GOOS)
	}
	if p.Net.Mode != wire.NetFull || len(p.Net.Deny) > 0 {
		return refuse("%s cannot hold a run to a network mode, allowlist or deny list: only trusted with its whole network runs here", runtime.GOOS)
	}
	return nil
}

// Run runs trusted commands with the timeout and output caps; it refuses
// anything else.
func Run(ctx context.Context, spec *Spec) (*Result, error) {
	if err := spec.validate(); err != nil {
		return nil, err
	}
	if err := Check(spec.Profile); err != nil {
		return nil, err
	}
	return runWrapped(ctx, spec, nil, []string{"timeout", "output-caps"})
}

// Mechanisms describes what this machine enforces.
func Mechanisms() string { return "none (trusted only)" }
