package policy

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/moatsec/moat/pkg/wire"
)

// loadFiles writes each source as its own rules file, in order, and loads them.
func loadFiles(t *testing.T, srcs ...string) (*Ruleset, error) {
	t.Helper()
	dir := t.TempDir()
	var paths []string
	for i, src := range srcs {
		paths = append(paths, writeRules(t, dir, string(rune('a'+i))+".rules", src))
	}
	return LoadRules(paths...)
}

// m builds an expected match: prefix words, decision, resolved program, justification.
func m(prefix, decision, resolved, justification string) RuleMatch {
	return RuleMatch{PrefixRuleMatch{MatchedPrefix: strings.Fields(prefix), Decision: decision, ResolvedProgram: resolved, Justification: justification}}
}

// TestCodexPublishedCases: the cases of Codex's execpolicy tests
// (codex-rs/execpolicy/tests/basic.rs), each named after its Codex test,
// answered by moat's Check, which must give Codex's answer. docs/policy.md
// keeps the same table with moat's full-engine answer beside it.
func TestCodexPublishedCases(t *testing.T) {
	home := t.TempDir()
	w := newWorld(t)
	tests := []struct {
		name    string
		files   []string
		argv    []string
		resolve bool
		want    []RuleMatch // nil: no rule matches
	}{
		{"basic_match", []string{`prefix_rule(pattern = ["git", "status"])`},
			argv("git status"), false, []RuleMatch{m("git status", "allow", "", "")}},
		{"justification_is_attached_to_forbidden_matches", []string{`prefix_rule(pattern = ["rm"], decision = "forbidden", justification = "destructive command")`},
			argv("rm -rf /some/important/folder"), false, []RuleMatch{m("rm", "forbidden", "", "destructive command")}},
		{"justification_can_be_used_with_allow_decision", []string{`prefix_rule(pattern = ["ls"], decision = "allow", justification = "safe and commonly used")`},
			argv("ls -l"), false, []RuleMatch{m("ls", "allow", "", "safe and commonly used")}},
		{"parses_multiple_policy_files/status", []string{`prefix_rule(pattern = ["git"], decision = "prompt")`, `prefix_rule(pattern = ["git", "commit"], decision = "forbidden")`},
			argv("git status"), false, []RuleMatch{m("git", "prompt", "", "")}},
		{"parses_multiple_policy_files/commit", []string{`prefix_rule(pattern = ["git"], decision = "prompt")`, `prefix_rule(pattern = ["git", "commit"], decision = "forbidden")`},
			argv("git commit -m hi"), false, []RuleMatch{m("git", "prompt", "", ""), m("git commit", "forbidden", "", "")}},
		{"only_first_token_alias_expands_to_multiple_rules/bash", []string{`prefix_rule(pattern = [["bash", "sh"], ["-c", "-l"]])`},
			argv("bash -c echo hi"), false, []RuleMatch{m("bash -c", "allow", "", "")}},
		{"only_first_token_alias_expands_to_multiple_rules/sh", []string{`prefix_rule(pattern = [["bash", "sh"], ["-c", "-l"]])`},
			argv("sh -l echo hi"), false, []RuleMatch{m("sh -l", "allow", "", "")}},
		{"tail_aliases_are_not_cartesian_expanded/i", []string{`prefix_rule(pattern = ["npm", ["i", "install"], ["--legacy-peer-deps", "--no-save"]])`},
			argv("npm i --legacy-peer-deps"), false, []RuleMatch{m("npm i --legacy-peer-deps", "allow", "", "")}},
		{"tail_aliases_are_not_cartesian_expanded/install", []string{`prefix_rule(pattern = ["npm", ["i", "install"], ["--legacy-peer-deps", "--no-save"]])`},
			argv("npm install --no-save leftpad"), false, []RuleMatch{m("npm install --no-save", "allow", "", "")}},
		{"match_and_not_match_examples_are_enforced/match", []string{codexExamplesRule},
			argv("git status"), false, []RuleMatch{m("git status", "allow", "", "")}},
		{"match_and_not_match_examples_are_enforced/no_match", []string{codexExamplesRule},
			argv("git --config color.status=always status"), false, nil},
		{"strictest_decision_wins_across_matches", []string{"prefix_rule(pattern = [\"git\"], decision = \"prompt\")\nprefix_rule(pattern = [\"git\", \"commit\"], decision = \"forbidden\")"},
			argv("git commit -m hi"), false, []RuleMatch{m("git", "prompt", "", ""), m("git commit", "forbidden", "", "")}},
		{"heuristics_match_is_returned_when_no_policy_matches", []string{""},
			argv("python"), false, nil},
		{"home_relative_host_executable_path_is_expanded_and_used_for_resolution", []string{"prefix_rule(pattern = [\"az\", \"account\", \"show\"], decision = \"prompt\")\nhost_executable(name = \"az\", paths = [\"~/.openai/bin/az\"])"},
			[]string{home + "/.openai/bin/az", "account", "show"}, true, []RuleMatch{m("az account show", "prompt", home+"/.openai/bin/az", "")}},
		{"host_executable_resolution_uses_basename_rule_when_allowed", []string{"prefix_rule(pattern = [\"git\", \"status\"], decision = \"prompt\")\nhost_executable(name = \"git\", paths = [\"/usr/bin/git\"])"},
			argv("/usr/bin/git status"), true, []RuleMatch{m("git status", "prompt", "/usr/bin/git", "")}},
		{"host_executable_resolution_respects_explicit_empty_allowlist", []string{"prefix_rule(pattern = [\"git\"], decision = \"prompt\")\nhost_executable(name = \"git\", paths = [])"},
			argv("/usr/bin/git status"), true, nil},
		{"host_executable_resolution_ignores_path_not_in_allowlist", []string{"prefix_rule(pattern = [\"git\"], decision = \"prompt\")\nhost_executable(name = \"git\", paths = [\"/usr/bin/git\"])"},
			argv("/opt/homebrew/bin/git status"), true, nil},
		{"host_executable_resolution_falls_back_without_mapping", []string{`prefix_rule(pattern = ["git"], decision = "prompt")`},
			argv("/usr/bin/git status"), true, []RuleMatch{m("git", "prompt", "/usr/bin/git", "")}},
		{"host_executable_resolution_does_not_override_exact_match", []string{"prefix_rule(pattern = [\"/usr/bin/git\"], decision = \"allow\")\nprefix_rule(pattern = [\"git\"], decision = \"prompt\")\nhost_executable(name = \"git\", paths = [\"/usr/bin/git\"])"},
			argv("/usr/bin/git status"), true, []RuleMatch{m("/usr/bin/git", "allow", "", "")}},
		{"host resolution off: an absolute path matches no basename rule", []string{`prefix_rule(pattern = ["git"], decision = "prompt")`},
			argv("/usr/bin/git status"), false, nil},
		{"append_allow_prefix_rule_dedupes_existing_rule (the line Codex appends)", []string{"prefix_rule(pattern=[\"python3\"], decision=\"allow\")\n"},
			argv("python3 -V"), false, []RuleMatch{m("python3", "allow", "", "")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := loadFiles(t, tt.files...)
			if err != nil {
				t.Fatal(err)
			}
			got := rs.Check(tt.argv, tt.resolve, home)
			want := tt.want
			if want == nil {
				want = []RuleMatch{}
			}
			if !reflect.DeepEqual(got.MatchedRules, want) {
				t.Fatalf("Check(%q) = %+v, want %+v", tt.argv, got.MatchedRules, want)
			}
			wantDecision := ""
			for _, w := range want {
				if wantDecision == "" || severityOfCodex(w.PrefixRuleMatch.Decision) > severityOfCodex(wantDecision) {
					wantDecision = w.PrefixRuleMatch.Decision
				}
			}
			if got.Decision != wantDecision {
				t.Fatalf("decision %q, want %q", got.Decision, wantDecision)
			}
			e := New(Options{})
			e.SetRules(rs)
			d := w.decide(t, e, "workspace-write", tt.argv)
			if got, want := d.Verdict+" "+d.Reasons[0].Rule, engineAnswers[tt.name]; got != want {
				t.Fatalf("moat check under workspace-write = %s, want %s (docs/policy.md): %v", got, want, d.Reasons)
			}
		})
	}
}

// engineAnswers are moat check's answers (verdict and first rule) for the
// same cases under workspace-write: where they differ from Codex's, the
// built-in rules are stricter (docs/policy.md says why, case by case).
var engineAnswers = map[string]string{
	"basic_match": "allow file.prefix-rule",
	"justification_is_attached_to_forbidden_matches":                          "deny file.prefix-rule",
	"justification_can_be_used_with_allow_decision":                           "allow file.prefix-rule",
	"parses_multiple_policy_files/status":                                     "prompt file.prefix-rule",
	"parses_multiple_policy_files/commit":                                     "deny file.prefix-rule",
	"only_first_token_alias_expands_to_multiple_rules/bash":                   "allow file.prefix-rule",
	"only_first_token_alias_expands_to_multiple_rules/sh":                     "allow file.prefix-rule",
	"tail_aliases_are_not_cartesian_expanded/i":                               "deny net.package-manager",
	"tail_aliases_are_not_cartesian_expanded/install":                         "deny net.package-manager",
	"match_and_not_match_examples_are_enforced/match":                         "allow file.prefix-rule",
	"match_and_not_match_examples_are_enforced/no_match":                      "allow fs.write-inside",
	"strictest_decision_wins_across_matches":                                  "deny file.prefix-rule",
	"heuristics_match_is_returned_when_no_policy_matches":                     "allow default.sandboxed",
	"home_relative_host_executable_path_is_expanded_and_used_for_resolution":  "deny net.client",
	"host_executable_resolution_uses_basename_rule_when_allowed":              "prompt file.prefix-rule",
	"host_executable_resolution_respects_explicit_empty_allowlist":            "prompt file.prefix-rule",
	"host_executable_resolution_ignores_path_not_in_allowlist":                "prompt file.prefix-rule",
	"host_executable_resolution_falls_back_without_mapping":                   "prompt file.prefix-rule",
	"host_executable_resolution_does_not_override_exact_match":                "prompt file.prefix-rule",
	"host resolution off: an absolute path matches no basename rule":          "prompt file.prefix-rule",
	"append_allow_prefix_rule_dedupes_existing_rule (the line Codex appends)": "allow file.prefix-rule",
}

const codexExamplesRule = `prefix_rule(
    pattern = ["git", "status"],
    match = [["git", "status"], "git status"],
    not_match = [
        ["git", "--config", "color.status=always", "status"],
        "git --config color.status=always status",
    ],
)`

// TestCodexPublishedLoadCases: what Codex's tests load or refuse, moat loads
// or refuses, with the file and line.
func TestCodexPublishedLoadCases(t *testing.T) {
	refused := []struct{ name, src, msg string }{
		{"justification_cannot_be_empty", "prefix_rule(\n    pattern = [\"ls\"],\n    decision = \"prompt\",\n    justification = \"   \",\n)", "justification cannot be empty"},
		{"network_rule_rejects_wildcard_hosts", `network_rule(host="*", protocol="http", decision="allow")`, "wildcards are not allowed"},
		{"host_executable_rejects_non_absolute_path", `host_executable(name = "git", paths = ["git"])`, "host_executable paths must be absolute"},
		{"host_executable_rejects_named_user_home_path", `host_executable(name = "git", paths = ["~someone/bin/git"])`, "host_executable paths must be absolute"},
		{"host_executable_rejects_name_with_path_separator", `host_executable(name = "/usr/bin/git", paths = ["/usr/bin/git"])`, "host_executable name must be a bare executable name"},
		{"host_executable_rejects_path_with_wrong_basename", `host_executable(name = "git", paths = ["/usr/bin/rg"])`, "must have basename `git`"},
		{"a match example that does not match", `prefix_rule(pattern = ["git", "status"], match = ["git stash"])`, "match example git stash does not match"},
		{"a not_match example that matches", `prefix_rule(pattern = ["git"], not_match = [["git", "push"]])`, "not_match example git push matches"},
		{"network_rule bad protocol", `network_rule(host="x.com", protocol="ftp", decision="allow")`, "protocol must be one of"},
		{"network_rule with a scheme", `network_rule(host="https://x.com", protocol="https", decision="allow")`, "without scheme or path"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadFiles(t, "\n"+tt.src)
			if err == nil || !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), "a.rules:2") {
				t.Fatalf("err = %v, want one at a.rules:2 saying %q", err, tt.msg)
			}
		})
	}

	t.Run("parses_host_executable_paths", func(t *testing.T) {
		rs, err := loadFiles(t, `host_executable(name = "git", paths = ["/opt/homebrew/bin/git", "/usr/bin/git", "/usr/bin/git"])`)
		if err != nil {
			t.Fatal(err)
		}
		if got := rs.HostExecutables()["git"]; !reflect.DeepEqual(got, []string{"/opt/homebrew/bin/git", "/usr/bin/git"}) {
			t.Fatalf("paths %v", got)
		}
	})
	t.Run("host_executable_last_definition_wins", func(t *testing.T) {
		rs, err := loadFiles(t, `host_executable(name = "git", paths = ["/usr/bin/git"])`, `host_executable(name = "git", paths = ["/opt/homebrew/bin/git"])`)
		if err != nil {
			t.Fatal(err)
		}
		if got := rs.HostExecutables()["git"]; !reflect.DeepEqual(got, []string{"/opt/homebrew/bin/git"}) {
			t.Fatalf("paths %v", got)
		}
	})
	t.Run("prefix_rule_examples_honor_host_executable_resolution", func(t *testing.T) {
		_, err := loadFiles(t, `prefix_rule(
    pattern = ["git", "status"],
    match = [["/usr/bin/git", "status"]],
    not_match = [["/opt/homebrew/bin/git", "status"]],
)
host_executable(name = "git", paths = ["/usr/bin/git"])`)
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("network_rules_compile_into_domain_lists", func(t *testing.T) {
		rs, err := loadFiles(t, `
network_rule(host = "google.com", protocol = "http", decision = "allow")
network_rule(host = "api.github.com", protocol = "https", decision = "allow")
network_rule(host = "blocked.example.com", protocol = "https", decision = "deny")
network_rule(host = "prompt-only.example.com", protocol = "https", decision = "prompt")
`)
		if err != nil {
			t.Fatal(err)
		}
		nr := rs.NetworkRules()
		if len(nr) != 4 || nr[1].Protocol != "https" || nr[2].Decision != "forbidden" || nr[3].Decision != "prompt" || !strings.HasSuffix(nr[0].Source, "a.rules:2") {
			t.Fatalf("network rules %+v", nr)
		}
		// Allows are applied only where a profile has an allowlist: said at load.
		if len(rs.Notices()) != 2 || !strings.Contains(rs.Notices()[0], "a.rules:2") {
			t.Fatalf("notices %q", rs.Notices())
		}
		want := []wire.NetRule{{Entry: "google.com:80", Decision: "allow"}, {Entry: "api.github.com:443", Decision: "allow"},
			{Entry: "blocked.example.com", Decision: "deny"}, {Entry: "prompt-only.example.com", Decision: "prompt"}}
		got := rs.Egress()
		for i := range got {
			got[i].Source = ""
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("egress %+v, want %+v", got, want)
		}
	})
}

// TestCodexExamplePolicy: the rules of Codex's examples/example.codexpolicy
// (retold here: a forbidden git reset --hard, prompting cp, allowed
// read-only commands, each with its examples) load and answer as there.
func TestCodexExamplePolicy(t *testing.T) {
	rs, err := loadFiles(t, `
prefix_rule(
    pattern = ["git", "reset", "--hard"],
    decision = "forbidden",
    justification = "throws away uncommitted work",
    match = [["git", "reset", "--hard"]],
    not_match = [["git", "reset", "--keep"], "git reset --merge"],
)
prefix_rule(pattern = ["ls"], match = [["ls"], ["ls", "-l"], "ls -a ."])
prefix_rule(pattern = ["cat"], match = ["cat file.txt", ["cat", "-n", "README.md"]])
prefix_rule(pattern = ["cp"], decision = "prompt", match = [["cp", "a", "b"], "cp -r src dest"])
prefix_rule(pattern = ["head"], match = ["head -n 5 CHANGELOG.md"], not_match = [["hea", "-n", "1"]])
prefix_rule(pattern = ["printenv"], match = ["printenv", "printenv PATH"], not_match = ["print -0"])
prefix_rule(pattern = ["pwd"], match = ["pwd"])
prefix_rule(pattern = ["which"], match = ["which python3", "which -a python3"])
`)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ cmd, want string }{
		{"git reset --hard", "forbidden"}, {"git reset --keep", ""}, {"ls -a .", "allow"},
		{"cat -n README.md", "allow"}, {"cp -r src dest", "prompt"}, {"head -n 5 CHANGELOG.md", "allow"},
		{"printenv PATH", "allow"}, {"pwd", "allow"}, {"which -a python3", "allow"}, {"rm x", ""},
	} {
		if got := rs.Check(argv(tt.cmd), false, ""); got.Decision != tt.want {
			t.Errorf("%s: decision %q, want %q", tt.cmd, got.Decision, tt.want)
		}
	}
}

// TestCodexDialect: each builtin and dialect feature Codex accepts, loaded
// from a file and used by the engine.
func TestCodexDialect(t *testing.T) {
	w := newWorld(t)
	src := `# Codex's extended Starlark: top-level for and if, f-strings, def, lambda, types.
TOOLS = ["terraform", "pulumi"]
for tool in TOOLS:
    prefix_rule([tool, "apply"], "forbidden", justification = f"{tool} apply changes real infrastructure")

if len(TOOLS) == 2:
    prefix_rule(pattern = ["gh", "pr", ["merge", "close"]], decision = "prompt")

def deny(*words: str, why: str) -> None:
    prefix_rule(pattern = list(words), decision = "forbidden", justification = why)

deny("make", "deploy", why = "deploys are CI's job")
reason = lambda what: "{} needs a person".format(what)
prefix_rule(["kubectl", "delete"], "prompt", None, None, reason("kubectl delete"))
name: str = "echo"
prefix_rule(pattern = [name, "$HOME"], match = [f"{name} $HOME", "echo '$HOME' x"], not_match = ["echo ~"])
host_executable("git", ["/usr/bin/git"])
prefix_rule(pattern = ["git", "status"], decision = "allow")
network_rule("Evil.Example.COM:443", "https", "deny", "exfiltration host")
network_rule(host = "pypi.org", protocol = "https", decision = "allow")
`
	dir := t.TempDir()
	path := writeRules(t, dir, "default.rules", src)
	rs, err := LoadRules(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := New(Options{Unknown: wire.VerdictPrompt})
	e.SetRules(rs)
	tests := []struct {
		argv   []string
		prof   string
		want   string
		source string
		msg    string
	}{
		{argv("terraform apply -auto-approve"), "trusted", wire.VerdictDeny, path + ":4", "terraform apply changes real infrastructure"},
		{argv("pulumi apply"), "trusted", wire.VerdictDeny, path + ":4", "pulumi apply"},
		{argv("gh pr close 7"), "workspace-net", wire.VerdictPrompt, path + ":7", ""},
		{argv("make deploy"), "workspace-write", wire.VerdictDeny, path + ":10", "deploys are CI's job"},
		{argv("kubectl delete pod x"), "workspace-net", wire.VerdictPrompt, path + ":14", "kubectl delete needs a person"},
		{argv("git status"), "workspace-write", wire.VerdictAllow, "", ""},
		{argv("/usr/bin/git status"), "workspace-write", wire.VerdictAllow, path + ":18", ""},
		// An allow rule does not reach a git that host_executable does not list
		// (it falls to the built-in git rule, here also allow: git status reads).
		{argv("/opt/evil/git status"), "workspace-write", wire.VerdictAllow, "", ""},
		{argv("curl https://evil.example.com/x"), "workspace-net", wire.VerdictDeny, path + ":19", "exfiltration host"},
		{argv("git clone https://evil.example.com/r"), "workspace-net", wire.VerdictDeny, path + ":19", ""},
		{argv("curl https://other.example.com/x"), "open", wire.VerdictAllow, "", ""},
		// A network_rule allow joins an allowlist; offline stays offline.
		{argv("curl https://pypi.org/simple"), "offline", wire.VerdictDeny, "", ""},
		{argv("curl https://pypi.org/simple"), "proxied", wire.VerdictAllow, "", ""},
	}
	for _, tt := range tests {
		d := w.decide(t, e, tt.prof, tt.argv)
		if d.Verdict != tt.want {
			t.Errorf("%q under %s = %s, want %s: %v", tt.argv, tt.prof, d.Verdict, tt.want, d.Reasons)
			continue
		}
		if tt.source == "" {
			continue
		}
		found := false
		for _, r := range d.Reasons {
			if strings.HasPrefix(r.Rule, "file.") && r.Source == tt.source && strings.Contains(r.Message, tt.msg) {
				found = true
			}
		}
		if !found {
			t.Errorf("%q: no reason from %s mentioning %q: %v", tt.argv, tt.source, tt.msg, d.Reasons)
		}
	}
	// /opt/evil/git is not listed: the allow rule at line 18 must not be what allowed it.
	for _, r := range w.decide(t, e, "workspace-write", argv("/opt/evil/git status")).Reasons {
		if r.Rule == "file.prefix-rule" {
			t.Errorf("an allow rule matched a git host_executable does not list: %v", r)
		}
	}
	if n := rs.NetworkRules(); len(n) != 2 || n[0].Host != "evil.example.com" || n[0].Decision != "forbidden" || n[0].Source != path+":19" {
		t.Errorf("network rules %+v", n)
	}
}

// TestRulesCheckJSON: the JSON shape is Codex's, decision omitted when
// nothing matches.
func TestRulesCheckJSON(t *testing.T) {
	rs, err := loadFiles(t, "prefix_rule(pattern = [\"git\", \"push\"], decision = \"prompt\", justification = \"pushes need a person\")")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		argv []string
		want string
	}{
		{argv("git push origin"), `{"matchedRules":[{"prefixRuleMatch":{"matchedPrefix":["git","push"],"decision":"prompt","justification":"pushes need a person"}}],"decision":"prompt"}`},
		{argv("git status"), `{"matchedRules":[]}`},
	} {
		b, _ := json.Marshal(rs.Check(tt.argv, false, ""))
		if string(b) != tt.want {
			t.Errorf("%q: %s, want %s", tt.argv, b, tt.want)
		}
	}
}

// TestCodexMultipleCommands: Codex's strictest_decision_across_multiple_commands,
// as moat meets it: one script of several commands, strictest wins.
func TestCodexMultipleCommands(t *testing.T) {
	w := newWorld(t)
	rs, err := loadFiles(t, "prefix_rule(pattern = [\"git\"], decision = \"prompt\")\nprefix_rule(pattern = [\"git\", \"commit\"], decision = \"forbidden\")")
	if err != nil {
		t.Fatal(err)
	}
	e := New(Options{})
	e.SetRules(rs)
	if d := w.decide(t, e, "workspace-write", sh("git status && git commit -m hi")); d.Verdict != wire.VerdictDeny || d.Reasons[0].Rule != "file.prefix-rule" {
		t.Fatalf("%+v", d)
	}
}

// TestCodexRepositoryStyleRules: rules written the way Codex's own
// repository writes its .codex/rules (nested alternatives over several
// lines, triple-quoted justifications) load, and the justification is the
// reason.
func TestCodexRepositoryStyleRules(t *testing.T) {
	w := newWorld(t)
	rs, err := loadFiles(t, `# Only what every developer of the project may run.
prefix_rule(
    pattern = [
        "just",
        [
            "fmt",
            "test",
        ],
    ],
    decision = "allow",
    justification = """
Needed: the recipes use the host's caches.
Safe: they only touch the checkout.
""",
)
prefix_rule(pattern = ["cargo", ["build", "test"]], decision = "allow", justification = """Cargo's own caches.""")
`)
	if err != nil {
		t.Fatal(err)
	}
	e := New(Options{Unknown: wire.VerdictPrompt})
	e.SetRules(rs)
	for _, c := range []string{"just test", "cargo test --all"} {
		d := w.decide(t, e, "workspace-write", argv(c))
		if d.Verdict != wire.VerdictAllow || d.Reasons[0].Rule != "file.prefix-rule" {
			t.Errorf("%s: %+v", c, d)
		}
	}
	if d := w.decide(t, e, "workspace-write", argv("just deploy")); d.Verdict != wire.VerdictPrompt {
		t.Errorf("just deploy: %+v", d)
	}
}
