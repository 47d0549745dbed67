package policy

import (
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/moatsec/moat/pkg/egress"
	"github.com/moatsec/moat/pkg/wire"
)

// netClients make network connections whatever their arguments.
var netClients = map[string]bool{
	"curl": true, "wget": true, "nc": true, "ncat": true, "netcat": true, "ssh": true, "scp": true, "sftp": true,
	"telnet": true, "ftp": true, "socat": true, "rsync": true, "aria2c": true, "axel": true, "lftp": true,
	"http": true, "https": true, "xh": true, "mosh": true, "tftp": true, "nmap": true, "dig": true,
	"nslookup": true, "host": true, "ping": true, "ping6": true, "traceroute": true, "tracepath": true,
	"whois": true, "fetch": true, "lynx": true, "w3m": true, "links": true, "openssl": true, "gh": true,
	"hub": true, "glab": true, "aws": true, "gcloud": true, "az": true, "kubectl": true, "helm": true,
	"docker": true, "podman": true, "rclone": true, "s3cmd": true, "mail": true, "sendmail": true,
}

// downloaders fetch data a pipe could feed to a shell.
var downloaders = map[string]bool{
	"curl": true, "wget": true, "fetch": true, "aria2c": true, "axel": true, "http": true, "https": true,
	"xh": true, "nc": true, "ncat": true, "netcat": true, "socat": true, "lynx": true, "w3m": true, "lftp": true,
	"tftp": true,
}

// packageManagers map to the subcommands that download; nil means any use does.
var packageManagers = map[string][]string{
	"npm":      {"install", "i", "ci", "add", "update", "up", "upgrade", "exec", "x", "init", "create", "publish", "login", "audit", "outdated", "view", "info", "search", "pack"},
	"npx":      nil,
	"yarn":     {"", "install", "add", "up", "upgrade", "dlx", "create", "global", "publish", "npm"},
	"pnpm":     {"install", "i", "add", "update", "up", "dlx", "create", "fetch", "publish"},
	"pnpx":     nil,
	"bunx":     nil,
	"uv":       {"pip", "sync", "add", "lock", "tool", "run", "python", "venv"},
	"uvx":      nil,
	"pip":      {"install", "download", "wheel", "search", "index"},
	"pipx":     {"install", "run", "upgrade", "reinstall", "inject"},
	"poetry":   {"install", "add", "update", "lock", "publish", "self"},
	"pdm":      {"install", "add", "update", "lock", "sync", "publish"},
	"conda":    {"install", "create", "update", "upgrade", "search", "env"},
	"mamba":    {"install", "create", "update", "upgrade", "search", "env"},
	"gem":      {"install", "update", "fetch", "push", "search", "sources"},
	"bundle":   {"install", "update", "add", "outdated", "exec", ""},
	"cargo":    {"install", "fetch", "update", "add", "publish", "search", "login", "generate-lockfile"},
	"go":       {"get", "install", "mod"},
	"apt":      {"install", "update", "upgrade", "full-upgrade", "dist-upgrade", "source", "download", "reinstall"},
	"apt-get":  {"install", "update", "upgrade", "dist-upgrade", "source", "download", "build-dep", "reinstall"},
	"aptitude": {"install", "update", "upgrade", "safe-upgrade", "full-upgrade", "download"},
	"dnf":      {"install", "update", "upgrade", "download", "makecache", "reinstall"},
	"yum":      {"install", "update", "upgrade", "makecache", "reinstall"},
	"zypper":   {"install", "in", "update", "up", "refresh", "ref", "dist-upgrade", "dup"},
	"apk":      {"add", "update", "upgrade", "fetch"},
	"pacman":   nil,
	"brew":     {"install", "update", "upgrade", "fetch", "tap", "reinstall"},
	"composer": {"install", "update", "require", "create-project", "global"},
	"dotnet":   {"restore", "add", "tool", "new"},
	"nuget":    {"install", "restore", "update", "push"},
	"snap":     {"install", "refresh", "download"},
	"flatpak":  {"install", "update", "remote-add"},
	"mvn":      nil,
	"gradle":   nil,
	"deno":     {"install", "cache", "add", "run", "upgrade"},
	"bun":      {"install", "i", "add", "update", "x", "create", "upgrade"},
	"cpan":     nil,
	"cpanm":    nil,
	"stack":    {"install", "build", "setup", "update"},
	"cabal":    {"install", "update", "build", "get"},
	"opam":     {"install", "update", "upgrade", "init"},
	"helm":     {"install", "upgrade", "pull", "repo", "dependency"},
}

// netCmd judges a network client against the profile's network.
func netCmd(j *judge, name string, args []arg, dir string, in stdin) {
	j.clientExecutors(name, args, dir)
	switch name {
	case "docker":
		j.add(deny, "priv.escalation", "", "docker talks to a daemon that runs as root: a container can mount the host")
		return
	case "rsync", "scp":
		if !hasRemote(name, args) {
			copyCmd(j, name, args, dir, in)
			return
		}
	case "openssl":
		if ops := operands(args, ""); len(ops) == 0 || (ops[0].s != "s_client" && ops[0].s != "s_time" && ops[0].s != "ocsp") {
			j.add(allow, wire.ReasonSandboxed, "", "openssl without a network subcommand, confined by profile %s", j.in.Profile.Name)
			return
		}
	}
	j.downloadTargets(name, args, dir)
	j.network(name, hosts(name, args))
}

// downloadTargets judges the files a downloader writes.
func (j *judge) downloadTargets(name string, args []arg, dir string) {
	switch name {
	case "curl":
		if o, ok := optionValue(args, 'o', "output"); ok && o.s != "-" {
			j.write(name, o, dir)
		}
		if hasFlag(args, "O", "remote-name", "remote-name-all") {
			j.write(name, arg{s: dir}, dir)
		}
	case "wget":
		if o, ok := optionValue(args, 'O', "output-document"); ok {
			if o.s != "-" {
				j.write(name, o, dir)
			}
		} else if p, ok := optionValue(args, 'P', "directory-prefix"); ok {
			j.write(name, p, dir)
		} else {
			j.write(name, arg{s: dir}, dir)
		}
	}
}

// network judges contacting hosts (nil: unknown hosts) under the profile.
func (j *judge) network(what string, hosts []string) {
	j.networkRules(what, hosts)
	n := j.in.Profile.Net
	switch n.Mode {
	case wire.NetFull:
		for _, h := range hosts {
			if !allowed(h, n) {
				j.add(deny, "net.not-allowed", "", "%s contacts %s, which profile %s's net_deny names (%s)", what, h, j.in.Profile.Name, strings.Join(n.Deny, ", "))
				return
			}
		}
		j.add(allow, "net.allowed", "", "%s uses the network, which profile %s allows", what, j.in.Profile.Name)
	case wire.NetAllowlist:
		// The rules files' network_rule allows join the list, as the proxy
		// will apply them (deny and prompt came in networkRules above).
		n.Allow = append(slices.Clip(n.Allow), j.rs.egressAllows()...)
		if len(hosts) == 0 {
			// The sandbox's egress proxy holds the command to the list by name.
			j.add(allow, wire.ReasonNetAllowlistUnknown, "", "%s contacts hosts not named in its arguments: moat's egress proxy lets it reach only profile %s's allowlist (%s)", what, j.in.Profile.Name, strings.Join(n.Allow, ", "))
			return
		}
		for _, h := range hosts {
			if !allowed(h, n) {
				j.add(deny, "net.not-allowed", "", "%s contacts %s, which is not in profile %s's allowlist (%s)", what, h, j.in.Profile.Name, strings.Join(n.Allow, ", "))
				return
			}
		}
		j.add(allow, "net.allowed", "", "%s contacts only allowed hosts (%s)", what, strings.Join(hosts, ", "))
	default:
		j.add(deny, "net.client", "", "%s makes network connections, but profile %s has no network", what, j.in.Profile.Name)
	}
}

// pkgCmd judges package managers: the subcommands that download need network.
func pkgCmd(j *judge, name string, args []arg, dir string, in stdin) {
	key := name
	if pipName.MatchString(name) {
		key = "pip"
	}
	subs, known := packageManagers[key]
	if !known {
		return
	}
	ops := operands(args, "CcfpeIirr", "prefix", "directory", "file", "cwd", "index-url", "requirement")
	sub := ""
	if len(ops) > 0 {
		sub = ops[0].s
	}
	downloads := subs == nil || slices.Contains(subs, sub)
	switch {
	case key == "pip" && hasFlag(args, "", "no-index"):
		downloads = false
	case key == "go" && sub == "mod":
		downloads = len(ops) > 1 && (ops[1].s == "download" || ops[1].s == "tidy" || ops[1].s == "vendor")
	case key == "go" && sub == "install":
		downloads = len(ops) > 1 && strings.Contains(ops[1].s, "@")
	case key == "pacman":
		downloads = hasFlag(args, "Sy", "sync", "refresh")
	}
	if !downloads {
		return // nothing to say: the command is judged like any other
	}
	if j.in.Profile.Net.Mode == wire.NetNone {
		j.add(deny, "net.package-manager", "", "%s %s downloads packages, but profile %s has no network", name, sub, j.in.Profile.Name)
		return
	}
	j.network(name+" "+sub, nil)
}

// hasRemote reports whether rsync or scp names a remote (host:path, rsync://).
func hasRemote(name string, args []arg) bool {
	for _, op := range operands(args, "eiPFoJlcS", "rsh", "port", "rsync-path") {
		if op.dyn {
			return true
		}
		s := op.s
		if strings.Contains(s, "://") {
			return true
		}
		if i := strings.IndexByte(s, ':'); i > 0 && !strings.Contains(s[:i], "/") {
			return true
		}
	}
	return false
}

// hosts extracts the hosts a client contacts, when its arguments say.
func hosts(name string, args []arg) []string {
	var out []string
	var ops []arg
	switch name {
	case "curl":
		ops = operands(args, "oduHXAeFTxwbcEKmrzYyCPQ", "output", "data", "header", "request", "user", "user-agent",
			"referer", "form", "upload-file", "proxy", "write-out", "cookie", "cert", "key", "max-time", "config",
			"resolve", "connect-to", "data-raw", "data-binary", "json", "cookie-jar", "continue-at", "range")
	case "wget":
		ops = operands(args, "OoaPeitTwUQlAR", "output-document", "output-file", "directory-prefix", "execute",
			"input-file", "tries", "timeout", "wait", "user-agent", "header", "user", "password", "quota", "level")
	default:
		ops = operands(args, "pilobcDEeFIJLmOoQRSWwx")
	}
	for _, op := range ops {
		if op.dyn {
			return nil
		}
		s := op.s
		switch name {
		case "ssh", "scp", "sftp", "mosh", "telnet", "ftp", "nc", "ncat", "netcat", "ping", "ping6", "dig", "host", "nslookup", "whois", "traceroute":
			if h := hostOf(s); h != "" {
				out = append(out, h)
			}
			if name == "ssh" || name == "telnet" || name == "nc" || name == "ncat" || name == "netcat" {
				return out // the rest is a command or a port
			}
			continue
		}
		if u, err := url.Parse(s); err == nil && u.Host != "" {
			out = append(out, u.Host)
		} else if strings.Contains(s, ".") && !strings.HasPrefix(s, "/") && !strings.HasPrefix(s, ".") {
			if h, _, _ := strings.Cut(s, "/"); h != "" {
				out = append(out, h)
			}
		}
	}
	return out
}

func hostOf(s string) string {
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		s = s[i+1:]
	}
	if h, _, ok := strings.Cut(s, ":"); ok && !strings.Contains(s, "]") {
		s = h
	}
	if strings.HasPrefix(s, "-") || s == "" {
		return ""
	}
	return s
}

// allowed reports whether host[:port] is admitted by the profile's lists
// as the sandbox's egress proxy judges it by name (a missing port: 443 or
// 80). Under full network only net_deny refuses here: an address such as
// 127.0.0.1 is the sandbox's own loopback when the command goes direct.
func allowed(hostport string, n wire.Net) bool {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = strings.Trim(hostport, "[]"), ""
	}
	full := n.Mode == wire.NetFull
	pol, err := egress.NewPolicy("", full, n.Allow, n.Deny)
	if err != nil {
		return false
	}
	admits := func(p int) bool {
		v := pol.Admit(host, p)
		return v.OK || (full && v.Rule != egress.RuleDenied)
	}
	if port == "" {
		return admits(443) || admits(80)
	}
	p, err := strconv.Atoi(port)
	return err == nil && admits(p)
}
