//go:build darwin

package sandbox

import (
	"context"
	"os"

	"github.com/moatsec/moat/pkg/wire"
)

const sandboxExec = "/usr/bin/sandbox-exec"

// Check reports whether this Mac can enforce p: it needs sandbox-exec.
func Check(p *wire.Profile) error {
	if _, err := os.Stat(sandboxExec); err != nil {
		return refuse("%s is missing: macOS runs commands under its Seatbelt profile", sandboxExec)
	}
	return nil
}

// Run runs spec under its generated Seatbelt profile.
func Run(ctx context.Context, spec *Spec) (*Result, error) {
	if err := spec.validate(); err != nil {
		return nil, err
	}
	if err := Check(spec.Profile); err != nil {
		return nil, err
	}
	return runWrapped(ctx, spec, []string{sandboxExec, "-p", Seatbelt(spec.Profile)}, []string{"seatbelt", "timeout", "output-caps"})
}

// Mechanisms describes what this machine enforces.
func Mechanisms() string { return "seatbelt (sandbox-exec)" }
