//go:build linux

package sandbox

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A tree caches the directories under one root (a writable workspace, or a
// git directory made writable for it): for each, its inode and ctime, its
// subdirectories, and whether it holds a HEAD or a .git entry. A refresh
// stats every known directory and reads only those whose ctime or inode
// changed — any entry created, removed or renamed in a directory changes
// its ctime, which no one can set back (utimes moves it to now) — so its
// cost is one lstat per directory, not one per file.
//
// A directory whose ctime was within settle of the clock when read is read
// again next time: the kernel stamps times from a coarse clock, and two
// changes in one tick would look like one.
type tree struct {
	mu   sync.Mutex
	root string
	dirs map[string]*dirState
	// marks are the directories holding a HEAD or a .git entry.
	marks map[string]*dirState
	// runs are the runs going on under this root; a refresh adds the
	// directories it found changed to each one's set.
	runs map[*watch]struct{}
	used time.Time
	// unreadable are the directories the last refresh could not list
	// (a git directory below one cannot be found): path → why.
	unreadable map[string]error
}

type dirState struct {
	ino, dev  uint64
	ctime     int64
	subdirs   []string
	head      bool  // holds an entry named HEAD: git may take it for a git directory
	dotgit    uint8 // the type of its .git entry: 0 none, 'd' a directory, 'f' anything else
	unsettled bool
}

const settle = 50 * time.Millisecond

// maxTrees bounds the cache; an idle tree past it is dropped (its next run
// reads it whole again).
const maxTrees = 64

var trees = struct {
	sync.Mutex
	m map[string]*tree
}{m: map[string]*tree{}}

// treeFor returns root's tree, registering w as one of its runs.
func treeFor(root string, w *watch) *tree {
	trees.Lock()
	defer trees.Unlock()
	t := trees.m[root]
	if t == nil {
		if len(trees.m) >= maxTrees {
			evictIdle()
		}
		t = &tree{root: root, dirs: map[string]*dirState{}, marks: map[string]*dirState{}, runs: map[*watch]struct{}{}}
		trees.m[root] = t
	}
	t.mu.Lock()
	t.runs[w] = struct{}{}
	t.used = time.Now()
	t.mu.Unlock()
	return t
}

// evictIdle drops the least recently used tree no run is using.
func evictIdle() {
	var oldest *tree
	for _, t := range trees.m {
		t.mu.Lock()
		idle := len(t.runs) == 0
		t.mu.Unlock()
		if idle && (oldest == nil || t.used.Before(oldest.used)) {
			oldest = t
		}
	}
	if oldest != nil {
		delete(trees.m, oldest.root)
	}
}

func (t *tree) release(w *watch) {
	t.mu.Lock()
	delete(t.runs, w)
	t.mu.Unlock()
}

// searchable reports whether sandboxd may look below dir (a variable for
// tests: root searches every directory).
var searchable = func(dir string) bool { return unix.Faccessat(unix.AT_FDCWD, dir, unix.X_OK, unix.AT_EACCESS) == nil }

var errUnsearchable = errors.New("it can be listed but not searched")

// readDir lists a directory (a variable for tests: root reads every
// directory but on some network and FUSE filesystems).
var readDir = os.ReadDir

// refresh brings the cache up to date and hands every run going on the
// directories found changed. It returns the marked directories.
func (t *tree) refresh() map[string]dirState {
	t.mu.Lock()
	defer t.mu.Unlock()
	var changed []changedDir
	if t.unreadable == nil {
		t.unreadable = map[string]error{}
	}
	t.visit(t.root, time.Now(), &changed)
	for w := range t.runs {
		w.addChanged(changed)
	}
	marks := make(map[string]dirState, len(t.marks))
	for p, d := range t.marks {
		marks[p] = *d
	}
	return marks
}

// changedDir is a directory a refresh found changed; fresh when it was
// not there before, as that directory (made, or renamed into place, during
// the run): its entries may be older than the run.
type changedDir struct {
	path  string
	fresh bool
}

func (t *tree) visit(path string, now time.Time, changed *[]changedDir) {
	var st unix.Stat_t
	if unix.Lstat(path, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.forget(path)
		return
	}
	ctime := st.Ctim.Nano()
	old := t.dirs[path]
	if old != nil && !old.unsettled && old.ino == st.Ino && old.dev == st.Dev && old.ctime == ctime {
		for _, s := range old.subdirs {
			t.visit(path+"/"+s, now, changed)
		}
		return
	}
	d := &dirState{ino: st.Ino, dev: st.Dev, ctime: ctime, unsettled: now.UnixNano()-ctime < int64(settle)}
	ents, err := readDir(path)
	switch {
	case err != nil && !errors.Is(err, os.ErrNotExist):
		d.unsettled = true // unreadable now: try again next time
		t.unreadable[path] = err
	case err != nil:
		d.unsettled = true // removed meanwhile: the next look forgets it
	case !searchable(path):
		// Listed but not searched (mode 0444, sandboxd not root): what
		// lies below cannot be looked at, as if it could not be listed.
		d.unsettled = true
		t.unreadable[path] = errUnsearchable
	default:
		delete(t.unreadable, path)
	}
	for _, e := range ents {
		switch name := e.Name(); {
		case name == ".git":
			d.dotgit = 'f'
			if e.IsDir() {
				d.dotgit = 'd'
				d.subdirs = append(d.subdirs, name)
			}
		case name == "HEAD":
			d.head = true
		case e.IsDir():
			d.subdirs = append(d.subdirs, name)
		}
	}
	if old != nil {
		for _, s := range old.subdirs {
			if !contains(d.subdirs, s) {
				t.forget(path + "/" + s)
			}
		}
	}
	t.dirs[path] = d
	if d.head || d.dotgit != 0 {
		t.marks[path] = d
	} else {
		delete(t.marks, path)
	}
	*changed = append(*changed, changedDir{path, old == nil || old.ino != st.Ino || old.dev != st.Dev})
	for _, s := range d.subdirs {
		t.visit(path+"/"+s, now, changed)
	}
}

// forget drops path and everything cached below it.
func (t *tree) forget(path string) {
	d := t.dirs[path]
	if d == nil {
		return
	}
	delete(t.dirs, path)
	delete(t.marks, path)
	for _, s := range d.subdirs {
		t.forget(filepath.Join(path, s))
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// unlisted are the directories the last refresh could not list, sorted,
// with why.
func (t *tree) unlisted() ([]string, map[string]error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var dirs []string
	for p := range t.unreadable {
		if _, ok := t.dirs[p]; !ok {
			delete(t.unreadable, p) // forgotten since
			continue
		}
		dirs = append(dirs, p)
	}
	slices.Sort(dirs)
	return dirs, maps.Clone(t.unreadable)
}
