package inside

import (
	"bytes"
	"encoding/json"
	"testing"
)

// TestWarmConfigMatches: the configuration prepare decodes to build
// encoding/json's caches ahead of a run names only fields Config has, so a
// renamed field fails here rather than leaving a cache unbuilt.
func TestWarmConfigMatches(t *testing.T) {
	d := json.NewDecoder(bytes.NewReader(warmConfig))
	d.DisallowUnknownFields()
	var cfg Config
	if err := d.Decode(&cfg); err != nil {
		t.Fatalf("warmConfig: %v", err)
	}
	if cfg.Profile == nil || len(cfg.Profile.Net.Ports) != 1 || len(cfg.Profile.FS.ReadDeny) != 1 {
		t.Fatalf("warmConfig leaves nested types unset: %+v", cfg)
	}
}
