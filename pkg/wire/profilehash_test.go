package wire

import (
	"crypto/sha256"
	"encoding/hex"
	"reflect"
	"testing"
)

// fill sets every leaf of v to a value that is not its zero.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0))
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k)
		fill(e)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Struct:
		for i := range v.NumField() {
			fill(v.Field(i))
		}
	}
}

// eachLeaf calls f once per leaf of v with that leaf changed, then restores it.
func eachLeaf(t *testing.T, v reflect.Value, path string, f func(path string)) {
	switch v.Kind() {
	case reflect.String:
		old := v.String()
		v.SetString(old + "y")
		f(path)
		v.SetString(old)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		old := v.Int()
		v.SetInt(old + 1)
		f(path)
		v.SetInt(old)
	case reflect.Bool:
		v.SetBool(!v.Bool())
		f(path)
		v.SetBool(!v.Bool())
	case reflect.Slice:
		old := v.Interface()
		v.Set(reflect.Zero(v.Type())) // nil
		f(path + "=nil")
		v.Set(reflect.ValueOf(old))
		for i := range v.Len() {
			eachLeaf(t, v.Index(i), path+"[i]", f)
		}
	case reflect.Map:
		old := v.Interface()
		v.Set(reflect.MakeMap(v.Type())) // empty
		f(path + "={}")
		v.Set(reflect.ValueOf(old))
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			eachLeaf(t, e, path+"[k]", func(p string) {
				v.SetMapIndex(k, e)
				f(p)
			})
			v.SetMapIndex(k, e) // e is restored by now
		}
	case reflect.Struct:
		for i := range v.NumField() {
			eachLeaf(t, v.Field(i), path+"."+v.Type().Field(i).Name, f)
		}
	default:
		t.Fatalf("%s: a %s in Profile: teach ProfileHash (and this test) about it", path, v.Kind())
	}
}

// A profile's hash changes with any one of its fields, whatever fields
// Profile gains: the policyd cache can never take one profile for another.
func TestProfileHashCoversEveryField(t *testing.T) {
	var p Profile
	fill(reflect.ValueOf(&p).Elem())
	base, err := ProfileHash(&p)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	eachLeaf(t, reflect.ValueOf(&p).Elem(), "Profile", func(path string) {
		n++
		h, err := ProfileHash(&p)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if h == base {
			t.Errorf("changing %s left the hash as it was", path)
		}
	})
	if again, _ := ProfileHash(&p); again != base {
		t.Fatalf("the test did not restore the profile: %s, want %s", again, base)
	}
	if n < 20 {
		t.Fatalf("only %d fields changed: the walk missed some", n)
	}
}

// Equal profiles hash alike, however their maps were built; a string split
// differently across fields does not.
func TestProfileHashCanonical(t *testing.T) {
	a := &Profile{Name: "p", Env: Env{Set: map[string]string{"A": "1", "B": "2", "C": "3"}}, FS: FS{Write: []string{"/w"}}}
	b := &Profile{Name: "p", Env: Env{Set: map[string]string{}}, FS: FS{Write: []string{"/w"}}}
	for _, k := range []string{"C", "A", "B"} {
		b.Env.Set[k] = a.Env.Set[k]
	}
	ha, _ := ProfileHash(a)
	hb, _ := ProfileHash(b)
	if ha != hb || len(ha) != ProfileHashLen {
		t.Fatalf("equal profiles: %s and %s", ha, hb)
	}
	x, _ := ProfileHash(&Profile{Name: "ab", Base: "c"})
	y, _ := ProfileHash(&Profile{Name: "a", Base: "bc"})
	if x == y {
		t.Fatal("fields split differently hash alike")
	}
}

// A map[string]string takes a path without reflection; it must give the
// bytes the reflective walk gives (a named map type takes that walk).
func TestProfileHashStringMapPath(t *testing.T) {
	type named map[string]string
	for _, m := range []map[string]string{{}, {"A": "1"}, {"b": "", "a": "xyz", "": "e", "PATH": "/usr/bin:/bin"}} {
		fast, err := appendCanonical(nil, reflect.ValueOf(m))
		if err != nil {
			t.Fatal(err)
		}
		slow, err := appendCanonical(nil, reflect.ValueOf(named(m)))
		if err != nil {
			t.Fatal(err)
		}
		if string(fast) != string(slow) {
			t.Fatalf("%v: %x, reflection gives %x", m, fast, slow)
		}
	}
}

// BenchmarkProfileHash: what a caller pays per check to name its profile.
func BenchmarkProfileHash(b *testing.B) {
	var p Profile
	fill(reflect.ValueOf(&p).Elem())
	for i := range 40 { // about the size of a resolved profile
		p.FS.Write = append(p.FS.Write, "/home/user/.cache/tool-"+string(rune('a'+i%26)))
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ProfileHash(&p); err != nil {
			b.Fatal(err)
		}
	}
}

// The memo of recent hashes answers only for equal bytes: a profile
// changed in place between two checks gets its new hash, and going back
// gets the old one, as computed without the memo.
func TestProfileHashMemoFollowsChanges(t *testing.T) {
	p := Profile{Name: "a", Workspace: "/w", FS: FS{Write: []string{"/w"}}}
	direct := func() string {
		b, err := appendCanonical(nil, reflect.ValueOf(&p).Elem())
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		return hex.EncodeToString(sum[:])
	}
	for i, write := range []string{"/w", "/x", "/w", "/y", "/x", "/z", "/v", "/w"} {
		p.FS.Write[0] = write // in place, as a careless caller might
		h, err := ProfileHash(&p)
		if err != nil {
			t.Fatal(err)
		}
		if want := direct(); h != want {
			t.Fatalf("step %d (%s): hash %s, want %s", i, write, h, want)
		}
	}
}
