package service

import (
	"runtime"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go"
)

// TestKeptBytesBounded: a flood of large answers keeps at most maxKeptBytes
// of them, the oldest going first: the heap after it has grown by that
// much, not by the flood's size (128 answers of 1 MiB, each under the
// bus's 8 MiB limit, 4,096 of which fit the count bound).
func TestKeptBytesBounded(t *testing.T) {
	const n, size = 128, 1 << 20
	k := &kept{byKey: make(map[keptKey]*keptAnswer), going: make(map[keptKey]int)}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	for i := range n {
		id := "req-" + strconv.Itoa(i)
		req := &Request{RequestID: id, reply: "_INBOX_client.caller." + id}
		msg := nats.NewMsg(req.reply)
		msg.Data = make([]byte, size)
		if k.start(req) {
			k.keep(req, msg)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	grown := int64(ms.HeapAlloc) - int64(before)
	if limit := int64(maxKeptBytes + 16<<20); grown > limit {
		t.Errorf("the heap grew by %d MiB keeping %d answers of 1 MiB; want at most %d MiB", grown>>20, n, limit>>20)
	}
	if k.bytes > maxKeptBytes {
		t.Errorf("%d bytes kept; want at most %d", k.bytes, maxKeptBytes)
	}
	has := func(i int) bool {
		id := "req-" + strconv.Itoa(i)
		return k.byKey[keptKey{"_INBOX_client.caller." + id, id}] != nil
	}
	if !has(n-1) || has(0) {
		t.Errorf("newest kept %v, oldest kept %v; want the newest kept and the oldest evicted", has(n-1), has(0))
	}
	runtime.KeepAlive(k)
}
