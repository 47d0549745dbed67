package egress_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moatsec/moat/pkg/egress"
	"github.com/moatsec/moat/pkg/egress/egresstest"
)

// run runs a real client with the proxy variables a sandbox gets.
func run(t *testing.T, f *fixture, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(egresstest.Tool(t, name), args...)
	proxy := "http://" + f.addr
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"http_proxy=" + proxy, "https_proxy=" + proxy, "HTTP_PROXY=" + proxy, "HTTPS_PROXY=" + proxy,
		"ALL_PROXY=socks5h://" + f.addr, "all_proxy=socks5h://" + f.addr, "NO_PROXY=", "no_proxy="}, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestRealClients(t *testing.T) {
	n, srv := world(t)
	root := t.TempDir()
	repo := filepath.Join(root, "repo.git")
	for _, args := range [][]string{{"init", "-q", "--bare", "--initial-branch=main", repo}, {"-C", repo, "config", "http.receivepack", "false"}} {
		if out, err := exec.Command(egresstest.Tool(t, "git"), args...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	work := t.TempDir()
	for _, args := range [][]string{{"init", "-q", work}, {"-C", work, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "egress"},
		{"-C", work, "push", "-q", repo, "HEAD:refs/heads/main"}} {
		if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	n.GitHTTPS("git.test", root)
	f := start(t, n, false, []string{"allowed.test", "git.test"}, nil)
	ca := n.CAFile(t.TempDir())

	t.Run("curl https", func(t *testing.T) {
		out, err := run(t, f, nil, "curl", "-sS", "--cacert", ca, "https://allowed.test/curl")
		if err != nil || out != "hello from allowed.test /curl" {
			t.Fatalf("%v %q", err, out)
		}
	})
	t.Run("curl http", func(t *testing.T) {
		out, err := run(t, f, nil, "curl", "-sS", "http://allowed.test/plain")
		if err != nil || out != "hello from allowed.test /plain" {
			t.Fatalf("%v %q", err, out)
		}
	})
	t.Run("curl socks5h", func(t *testing.T) {
		out, err := run(t, f, nil, "curl", "-sS", "--cacert", ca, "--proxy", "socks5h://"+f.addr, "https://allowed.test/socks")
		if err != nil || out != "hello from allowed.test /socks" {
			t.Fatalf("%v %q", err, out)
		}
	})
	t.Run("curl denied http shows the reason", func(t *testing.T) {
		out, err := run(t, f, nil, "curl", "-sS", "-i", "http://other.test/")
		if err != nil || !strings.Contains(out, "403") || !strings.Contains(out, "X-Moat-Deny:") || !strings.Contains(out, "net_allow") {
			t.Fatalf("%v %q", err, out)
		}
	})
	t.Run("curl denied https", func(t *testing.T) {
		out, err := run(t, f, nil, "curl", "-sS", "--cacert", ca, "https://other.test/")
		if err == nil || !strings.Contains(out, "403") {
			t.Fatalf("%v %q", err, out)
		}
	})
	t.Run("python urllib", func(t *testing.T) {
		code := `import ssl, urllib.request
ctx = ssl.create_default_context(cafile="` + ca + `")
print(urllib.request.urlopen("https://allowed.test/py", context=ctx).read().decode(), end="")
try:
    urllib.request.urlopen("http://other.test/")
except urllib.error.HTTPError as e:
    print(" |", e.code, e.headers["X-Moat-Deny"], end="")`
		out, err := run(t, f, nil, "python3", "-c", code)
		if err != nil || !strings.HasPrefix(out, "hello from allowed.test /py | 403 host=\"other.test:80\"") {
			t.Fatalf("%v %q", err, out)
		}
	})
	t.Run("git clone over https", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "clone")
		out, err := run(t, f, []string{"GIT_SSL_CAINFO=" + ca, "GIT_TERMINAL_PROMPT=0"}, "git", "clone", "-q", "https://git.test/repo.git", dst)
		if err != nil {
			t.Fatalf("%v %s", err, out)
		}
		log, err := exec.Command("git", "-C", dst, "log", "--format=%s").Output()
		if err != nil || strings.TrimSpace(string(log)) != "egress" {
			t.Fatalf("cloned log %q %v", log, err)
		}
	})
	if srv["other-http"].Conns.Load()+srv["other-https"].Conns.Load() != 0 || n.Lookups("other.test") != 0 {
		t.Fatal("other.test was reached or looked up")
	}
	var rules []string
	for _, d := range f.proxy.Denied() {
		rules = append(rules, d.Rule+" "+d.Dest())
	}
	if strings.Join(rules, ",") != egress.RuleNotAllowed+" other.test:80,"+egress.RuleNotAllowed+" other.test:443" {
		t.Fatalf("denied %v", rules)
	}
}
