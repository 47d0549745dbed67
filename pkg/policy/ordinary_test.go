package policy

import (
	"testing"

	"github.com/moatsec/moat/pkg/wire"
)

// ordinaryCommands are what developers and their agents run all day in a
// project: building, testing, formatting, reading and the local git
// workflow. Under workspace-write every one must stay ALLOW: a false
// positive here is a prompt or a denial a person learns to click through.
var ordinaryCommands = [][]string{
	// Go
	argv("go build ./..."), argv("go test ./... -count=1"), argv("go test -run TestX -v ./pkg/x"),
	argv("go vet ./..."), argv("gofmt -l ."), argv("gofmt -w main.go"), argv("go run ./cmd/tool"),
	argv("go test -race -coverprofile=cover.out ./..."), argv("go tool cover -func=cover.out"),
	argv("go generate ./..."), argv("go env GOPATH"), argv("go list -m all"),
	// C, make, cmake
	argv("make"), argv("make -j4 test"), argv("make clean"), argv("cmake -S . -B build"),
	argv("cmake --build build -j 4"), argv("gcc -O2 -o build/app src/main.c"), argv("./configure --prefix=/tmp/x"),
	argv("ctest --test-dir build"),
	// Python
	argv("python3 -m pytest -x tests"), argv("pytest -k smoke"), argv("python3 script.py --help"),
	argv("python3 -m venv .venv"), argv("ruff check ."), argv("black --check src"), argv("mypy src"),
	argv("python3 -m unittest discover"), argv("tox -e py312"),
	// JavaScript
	argv("npm test"), argv("npm run build"), argv("npm run lint -- --fix"), argv("node app.js"),
	argv("node_modules/.bin/tsc --noEmit"), argv("yarn test"), argv("pnpm run dev"), argv("eslint src --ext .ts"),
	argv("prettier --write src"), argv("jest --watchAll=false"),
	// Rust, Java and friends
	argv("cargo build"), argv("cargo test"), argv("cargo clippy -- -D warnings"), argv("cargo fmt"),
	argv("rustc --version"), argv("javac -d build src/Main.java"), argv("java -jar build/app.jar"),
	// Reading and searching
	argv("ls -la"), argv("cat README.md"), argv("head -n 20 file.txt"), argv("tail -f build.log"),
	argv("wc -l file.txt"), argv("grep -rn TODO src"), argv("rg -n TODO"), argv("rg --files"),
	{"find", ".", "-name", "*.go", "-not", "-path", "./vendor/*"}, argv("tree -L 2 src"),
	argv("diff -u a.txt b.txt"), argv("jq .version package.json"), argv("du -sh build"),
	argv("stat file.txt"), argv("file build/app"), argv("which go"), argv("less README.md"),
	{"sed", "-n", "1,20p", "file.txt"}, {"awk", "-F,", "{print $2}", "data.csv"}, argv("sort -u names.txt"),
	argv("xxd file.txt"), argv("man git-rebase"),
	// Editing the workspace
	{"sed", "-i", "s/foo/bar/g", "file.txt"}, argv("mkdir -p build/out"), argv("touch notes.md"),
	argv("cp file.txt file.bak"), argv("mv file.bak old.txt"), argv("rm -f old.txt"), argv("rm -rf build"),
	argv("rm -rf node_modules"), argv("ln -sf ../file.txt sub/link"), argv("chmod +x scripts/run.sh"),
	argv("chmod -R u+w ."), argv("tar -czf build/src.tgz src"), argv("unzip -o data.zip -d data"),
	argv("patch -p1 -i fix.diff"), {"bash", "-c", "echo done > build/status.txt"},
	// Cleaning caches the way people do
	{"find", ".", "-name", "*.pyc", "-delete"},
	{"find", ".", "-type", "d", "-name", "__pycache__", "-prune", "-exec", "rm", "-rf", "{}", "+"},
	{"find", "build", "-name", "*.o", "-delete"},
	{"find", ".", "-name", ".DS_Store", "-delete"},
	{"find", ".", "-type", "f", "-name", "*.orig", "-delete"},
	{"find", ".", "(", "-name", "*.pyc", "-o", "-name", "*.pyo", ")", "-delete"},
	{"find", ".", "-empty", "-type", "d", "-delete"},
	{"find", "/tmp", "-name", "pytest-*", "-mtime", "+1", "-delete"},
	// The local git workflow
	argv("git status"), argv("git status --short"), argv("git diff"), argv("git diff --cached"),
	argv("git log --oneline -20"), argv("git show HEAD"), argv("git blame file.txt"),
	argv("git add -A"), argv("git add file.txt"), argv("git commit -m fix"), argv("git commit --amend --no-edit"),
	argv("git switch -c feature/x"), argv("git checkout -b topic"), argv("git checkout main"),
	argv("git branch -a"), argv("git branch -d topic"), argv("git stash"), argv("git stash pop"),
	argv("git stash list"), argv("git rebase main"), argv("git rebase --continue"), argv("git merge --no-ff topic"),
	argv("git cherry-pick abc123"), argv("git tag v1.2.3"), argv("git restore --staged file.txt"),
	argv("git rm --cached file.txt"), argv("git mv a.txt b.txt"), argv("git revert HEAD --no-edit"),
	argv("git reset HEAD~1"), argv("git reset --soft HEAD~1"), argv("git log -p -- file.txt"),
	argv("git worktree list"), argv("git bisect start"), argv("git grep -n TODO"), argv("git format-patch -1 -o build"),
	argv("git -c color.ui=always log -1"), argv("git config --get user.email"),
	// Shell glue
	{"bash", "-lc", "cd src && make"}, {"bash", "-c", "ls | grep go | wc -l"},
	{"bash", "-c", "for f in *.txt; do echo $f; done"}, {"bash", "-c", "GIT_PAGER=cat git log -3"},
	{"bash", "-c", "export PAGER=cat; git log -1"}, {"bash", "-c", "test -f go.mod && go build ./..."},
	argv("env CGO_ENABLED=0 go build ./..."), argv("timeout 60 go test ./..."), argv("xargs -0 grep -l TODO"),
	argv("echo hello"), argv("date -u"), argv("sleep 1"),
	{"bash", "-c", "NODE_OPTIONS=--max-old-space-size=4096 npm run build"}, {"bash", "-c", "ENV=production make"},
	{"bash", "-c", "GIT_CONFIG_GLOBAL=/dev/null git status"}, {"bash", "-c", "BROWSER=none npm start"},
}

// TestOrdinaryCommandsStayAllowed guards against false positives.
func TestOrdinaryCommandsStayAllowed(t *testing.T) {
	if len(ordinaryCommands) < 100 {
		t.Fatalf("only %d ordinary commands", len(ordinaryCommands))
	}
	w := newWorld(t)
	e := New(Options{})
	for _, c := range ordinaryCommands {
		if d := w.decide(t, e, "workspace-write", c); d.Verdict != wire.VerdictAllow {
			t.Errorf("%q under workspace-write = %s, want allow: %v", c, d.Verdict, d.Reasons)
		}
	}
}

// TestFindDeleteReach: find -delete is judged by what it can reach.
func TestFindDeleteReach(t *testing.T) {
	w := newWorld(t)
	e := New(Options{})
	tests := []struct {
		argv []string
		want string // offline, workspace-write, workspace-net, trusted
	}{
		{[]string{"find", ".", "-name", "*.pyc", "-delete"}, "DAAA"},
		{[]string{"find", ".", "-path", "./build/*", "-delete"}, "DAAA"},
		{[]string{"find", ".", "-maxdepth", "0", "-delete"}, "DAAA"},
		{[]string{"find", "/", "-name", "*.pyc", "-delete"}, "DDDA"},
		{[]string{"find", ".", "-delete"}, "DDDD"},
		{[]string{"find", ".", "-delete", "-name", "*.pyc"}, "DDDD"},      // -delete runs before the test
		{[]string{"find", ".", "-name", "keep", "-o", "-delete"}, "DDDD"}, // everything else goes
		{[]string{"find", ".", "!", "-name", "keep", "-delete"}, "DDDD"},  // a negated test narrows nothing
		{[]string{"find", ".", "-type", "f", "-delete"}, "DDDD"},          // every file
		{[]string{"find", ".", "-maxdepth", "1", "-delete"}, "DDDD"},      // every top-level file
		{[]string{"find", ".", "(", "-type", "f", "-o", "-name", "x", ")", "-delete"}, "DDDD"},
		{[]string{"find", ".", "!", "(", "-name", "x", ")", "-delete"}, "DDDD"},
		{[]string{"find", "~", "-name", "*.tmp", "-delete"}, "DDDA"},
		{[]string{"find", "~", "-delete"}, "DDDD"},
		{[]string{"find", ".", "-name", "__pycache__", "-exec", "rm", "-rf", "{}", "+"}, "DAAA"},
		{[]string{"find", "/", "-name", "*.log", "-exec", "rm", "{}", ";"}, "DDDA"},
		{[]string{"find", "/", "-exec", "rm", "-rf", "{}", "+"}, "PPPP"}, // {} could be anything
		{argv("chmod -R u+w ."), "DAAA"},
		{argv("chmod -R 755 /usr"), "DDDD"},
	}
	for _, tt := range tests {
		for i, prof := range []string{"offline", "workspace-write", "workspace-net", "trusted"} {
			want := verdictOf[tt.want[i]]
			if d := w.decide(t, e, prof, tt.argv); d.Verdict != want {
				t.Errorf("%q under %s = %s, want %s: %v", tt.argv, prof, d.Verdict, want, d.Reasons)
			}
		}
	}
}
