package bench

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/moatsec/moat/pkg/wire"
)

// Recorder collects one measured series: latencies and errors by code.
// It is safe for concurrent use.
type Recorder struct {
	mu     sync.Mutex
	name   string
	hist   *hdrhistogram.Histogram
	errors map[int]int64
	sample map[int]string // one message per code
	start  time.Time
	end    time.Time
}

// NewRecorder records latencies from 1 µs to 10 minutes, 3 significant digits.
func NewRecorder(name string) *Recorder {
	return &Recorder{name: name, hist: hdrhistogram.New(1, int64(10*time.Minute/time.Microsecond), 3), errors: map[int]int64{}, sample: map[int]string{}, start: time.Now()}
}

// Observe records one operation that took d and ended with err.
func (r *Recorder) Observe(d time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		code := wire.CodeOf(err)
		r.errors[code]++
		if _, ok := r.sample[code]; !ok {
			r.sample[code] = err.Error()
		}
		return
	}
	us := d.Microseconds()
	if us < 1 {
		us = 1
	}
	r.hist.RecordValue(us)
}

// Time runs f and records it.
func (r *Recorder) Time(f func() error) error {
	t0 := time.Now()
	err := f()
	r.Observe(time.Since(t0), err)
	return err
}

// Result summarises the recorder now.
func (r *Recorder) Result(scenario string) Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.end.IsZero() {
		r.end = time.Now()
	}
	res := Result{Scenario: scenario, Name: r.name, Count: r.hist.TotalCount(), Errors: map[int]int64{},
		Seconds: r.end.Sub(r.start).Seconds()}
	for code, n := range r.errors {
		res.Errors[code] = n
		res.ErrorCount += n
	}
	if len(r.sample) > 0 {
		res.ErrorSamples = map[int]string{}
		for code, msg := range r.sample {
			res.ErrorSamples[code] = msg
		}
	}
	if res.Count > 0 {
		res.P50 = ms(r.hist.ValueAtQuantile(50))
		res.P90 = ms(r.hist.ValueAtQuantile(90))
		res.P99 = ms(r.hist.ValueAtQuantile(99))
		res.P999 = ms(r.hist.ValueAtQuantile(99.9))
		res.Max = ms(r.hist.Max())
		res.Mean = r.hist.Mean() / 1000
	}
	if res.Seconds > 0 {
		res.PerSecond = float64(res.Count) / res.Seconds
	}
	return res
}

// Stop marks the end of the series (for throughput).
func (r *Recorder) Stop() {
	r.mu.Lock()
	r.end = time.Now()
	r.mu.Unlock()
}

func ms(us int64) float64 { return float64(us) / 1000 }

// Result is one measured series of a scenario. Latencies are milliseconds.
type Result struct {
	Scenario     string             `json:"scenario"`
	Name         string             `json:"name"`
	Count        int64              `json:"count"`
	ErrorCount   int64              `json:"error_count"`
	Errors       map[int]int64      `json:"errors"`
	ErrorSamples map[int]string     `json:"error_samples,omitempty"`
	Seconds      float64            `json:"seconds"`
	PerSecond    float64            `json:"per_second"`
	P50          float64            `json:"p50_ms"`
	P90          float64            `json:"p90_ms"`
	P99          float64            `json:"p99_ms"`
	P999         float64            `json:"p999_ms"`
	Max          float64            `json:"max_ms"`
	Mean         float64            `json:"mean_ms"`
	Extra        map[string]float64 `json:"extra,omitempty"`
	Note         string             `json:"note,omitempty"`
}
