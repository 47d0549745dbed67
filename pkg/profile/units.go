package profile

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/moatsec/moat/pkg/wire"
)

// size is a byte count written as 1073741824, "512MiB", "1GiB", "100M" or "64k".
type size int64

func (s *size) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case int64:
		if x <= 0 {
			return fmt.Errorf("size %d must be positive", x)
		}
		*s = size(x)
		return nil
	case string:
		n, err := parseSize(x)
		*s = size(n)
		return err
	}
	return fmt.Errorf("size must be a number of bytes or a string such as \"512MiB\", not %T", v)
}

func parseSize(in string) (int64, error) {
	t := strings.TrimSpace(in)
	mult := int64(1)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1000}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"k", 1 << 10}, {"B", 1}}
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: want a positive number with an optional unit such as 512MiB or 2GiB", in)
	}
	return n * mult, nil
}

// duration is written as a Go duration string ("90s", "10m") or milliseconds.
type duration time.Duration

func (d *duration) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case int64:
		if x <= 0 {
			return fmt.Errorf("duration %d must be positive", x)
		}
		*d = duration(time.Duration(x) * time.Millisecond)
		return nil
	case string:
		p, err := time.ParseDuration(x)
		if err != nil || p <= 0 {
			return fmt.Errorf("duration %q: want a positive duration such as 90s or 10m", x)
		}
		*d = duration(p)
		return nil
	}
	return fmt.Errorf("duration must be a string such as \"90s\" or milliseconds, not %T", v)
}

// limitsTOML is the [limits] table of profiles.toml and .moat-profile.
type limitsTOML struct {
	Timeout  duration `toml:"timeout"`
	Memory   size     `toml:"memory"`
	Pids     int64    `toml:"pids"`
	CPU      duration `toml:"cpu"`
	Output   size     `toml:"output"`
	FileSize size     `toml:"file_size"`
}

// apply overrides l with the limits that are set; with capOnly it only lowers.
func (t limitsTOML) apply(l wire.Limits, capOnly bool) wire.Limits {
	set := func(dst *int64, v int64) {
		if v > 0 && (!capOnly || v < *dst) {
			*dst = v
		}
	}
	set(&l.TimeoutMS, time.Duration(t.Timeout).Milliseconds())
	set(&l.MemoryBytes, int64(t.Memory))
	set(&l.Pids, t.Pids)
	set(&l.CPUMS, time.Duration(t.CPU).Milliseconds())
	set(&l.OutputBytes, int64(t.Output))
	set(&l.FileBytes, int64(t.FileSize))
	return l
}
