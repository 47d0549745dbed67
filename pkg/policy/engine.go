package policy

import (
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moatsec/moat/pkg/profile"
	"github.com/moatsec/moat/pkg/wire"
)

// Options configure an Engine.
type Options struct {
	// Unknown is the verdict for a command no rule names: "allow" (the
	// default: it runs confined by its profile) or "prompt".
	Unknown string
}

// Engine decides. It is safe for concurrent use; SetRules swaps the rules
// files atomically between decisions.
type Engine struct {
	opts    Options
	rules   atomic.Pointer[Ruleset]
	problem atomic.Pointer[string] // why the rules files in force are not the files on disk
	homes   sync.Map               // workspace → homeEntry
}

// New returns an engine with no rules files loaded.
func New(opts Options) *Engine {
	if opts.Unknown == "" {
		opts.Unknown = wire.VerdictAllow
	}
	e := &Engine{opts: opts}
	e.rules.Store(emptyRuleset())
	return e
}

// SetRules puts a loaded ruleset in force.
func (e *Engine) SetRules(rs *Ruleset) { e.rules.Store(rs) }

// Rules is the ruleset in force.
func (e *Engine) Rules() *Ruleset { return e.rules.Load() }

// SetRulesProblem says why the rules in force are not what the files on
// disk say (a file that no longer loads); every decision then carries it as
// a reason, file.not-reloaded, until an empty problem clears it.
func (e *Engine) SetRulesProblem(problem string) {
	if problem == "" {
		e.problem.Store(nil)
		return
	}
	e.problem.Store(&problem)
}

// Input is one command to judge under a resolved profile.
type Input struct {
	Argv      []string
	Cwd       string // absolute; default the profile's cwd
	Workspace string // default the profile's workspace
	Profile   *wire.Profile
	// Env are the variables the run sets beside its command (moat run
	// --env, moat sh's environment): judged as assignments written before
	// it, since that is what the command gets.
	Env map[string]string
}

// Validate checks what Decide needs; errors are 400s.
func (in *Input) Validate() error {
	switch {
	case len(in.Argv) == 0:
		return wire.Errorf(wire.CodeBadRequest, "argv is empty: pass the command as a list of words")
	case in.Profile == nil:
		return wire.Errorf(wire.CodeBadRequest, "no profile: pass a profile name or a resolved profile")
	}
	for _, a := range in.Argv {
		if strings.ContainsRune(a, 0) {
			return wire.Errorf(wire.CodeBadRequest, "argv contains a NUL byte, which no command can receive")
		}
	}
	for k, v := range in.Env {
		if !wire.ValidVarName(k) || strings.ContainsRune(v, 0) {
			return wire.Errorf(wire.CodeBadRequest, "env: %q is not a variable a command can receive (a name of letters, digits and _, a value without NUL)", short(k))
		}
	}
	if in.Workspace == "" {
		in.Workspace = in.Profile.Workspace
	}
	if in.Cwd == "" {
		in.Cwd = in.Profile.Cwd
	}
	if in.Cwd == "" {
		in.Cwd = in.Workspace
	}
	if !filepath.IsAbs(in.Cwd) || !filepath.IsAbs(in.Workspace) {
		return wire.Errorf(wire.CodeBadRequest, "cwd and workspace must be absolute paths")
	}
	return nil
}

// Decide judges in. The decision always has at least one reason; reasons
// are ordered strictest first.
func (e *Engine) Decide(in *Input) (wire.Decision, error) {
	if err := in.Validate(); err != nil {
		return wire.Decision{}, err
	}
	j := &judge{e: e, rs: e.rules.Load(), in: in, seen: map[string]bool{}}
	j.home = e.ownerHome(in.Workspace)
	if j.home == "" {
		j.home = "/nonexistent-home"
	}
	j.environment(in.Env, in.Cwd)
	j.command(statics(in.Argv), in.Cwd, stdin{})
	if p := e.problem.Load(); p != nil {
		j.add(allow, "file.not-reloaded", "", "%s", *p)
	}
	if len(j.reasons) == 0 {
		return wire.Decision{}, errors.New("no rule produced a reason")
	}
	return wire.Decision{Verdict: j.verdict.String(), Reasons: j.sorted()}, nil
}

// homeTTL bounds how long a workspace's owner is remembered: a stat per
// decision costs more than the rest of a simple decision.
const homeTTL = 5 * time.Second

type homeEntry struct {
	home string
	at   time.Time
}

func (e *Engine) ownerHome(ws string) string {
	if v, ok := e.homes.Load(ws); ok && time.Since(v.(homeEntry).at) < homeTTL {
		return v.(homeEntry).home
	}
	h := profile.OwnerHome(ws)
	e.homes.Store(ws, homeEntry{home: h, at: time.Now()})
	return h
}
