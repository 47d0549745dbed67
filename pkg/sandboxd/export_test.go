package sandboxd

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// HoldHeartbeats holds back the heartbeats runs send of their own (the
// first would go out in an hour) until the test ends, so that the only
// heartbeats a caller hears answer its resumes (wire.SubjectRunResume).
// Call it before the stack starts; tests that call it must not run in
// parallel.
func HoldHeartbeats(t testing.TB) {
	was := firstHeartbeat
	firstHeartbeat = time.Hour
	t.Cleanup(func() { firstHeartbeat = was })
}

// FillStream makes the stream full: its bound shrunk to what it holds
// (beats rewrite their record at the same size). The returned func puts
// its configuration back.
func FillStream(t testing.TB, js jetstream.JetStream, name string) (restore func()) {
	t.Helper()
	ctx := context.Background()
	st, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg, full := info.Config, info.Config
	full.MaxBytes = int64(info.State.Bytes)
	if _, err := js.UpdateStream(ctx, full); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
}
