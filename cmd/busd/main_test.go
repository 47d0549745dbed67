package main

import (
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "busd.toml")
	os.WriteFile(file, []byte("cluster = \"moat\"\nroutes = [\"127.0.0.1:6222\", \"127.0.0.1:6223\"]\nname = \"from-file\"\n"), 0o600)
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	cluster := fs.String("cluster", "", "")
	routes := fs.String("routes", "", "")
	name := fs.String("name", "", "")
	fs.String("config", "", "")
	if err := fs.Parse([]string{"--name", "from-flag"}); err != nil {
		t.Fatal(err)
	}
	if err := loadConfig(fs, file); err != nil {
		t.Fatal(err)
	}
	if *cluster != "moat" || *routes != "127.0.0.1:6222,127.0.0.1:6223" || *name != "from-flag" {
		t.Fatalf("cluster %q routes %q name %q: want the file's, the flag winning over the file", *cluster, *routes, *name)
	}
}

func TestConfigFileUnknownKey(t *testing.T) {
	file := filepath.Join(t.TempDir(), "busd.toml")
	os.WriteFile(file, []byte("clustr = \"moat\"\n"), 0o600)
	err := run(context.Background(), []string{"--config", file}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `unknown key "clustr"`) {
		t.Fatalf("err = %v, want the unknown key named", err)
	}
}

// TestConfigFileProcs: procs from the file is applied as the flag is — a
// negative count refused before anything starts.
func TestConfigFileProcs(t *testing.T) {
	file := filepath.Join(t.TempDir(), "busd.toml")
	os.WriteFile(file, []byte("procs = -1\n"), 0o600)
	err := run(context.Background(), []string{"--config", file}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--procs -1") {
		t.Fatalf("procs = -1 in the file: %v, want it refused", err)
	}
}
