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

// TestKeptCountBounded: past maxKept small answers, the oldest goes first;
// an answer larger than the whole byte budget is not kept at all.
func TestKeptCountBounded(t *testing.T) {
	k := &kept{byKey: make(map[keptKey]*keptAnswer), going: make(map[keptKey]int)}
	keep := func(id string, size int) {
		req := &Request{RequestID: id, reply: "_INBOX_client.caller." + id}
		msg := nats.NewMsg(req.reply)
		msg.Data = make([]byte, size)
		if k.start(req) {
			k.keep(req, msg)
		}
	}
	has := func(id string) bool { return k.byKey[keptKey{"_INBOX_client.caller." + id, id}] != nil }
	for i := range maxKept + 1 {
		keep("req-"+strconv.Itoa(i), 10)
	}
	if k.n != maxKept || len(k.byKey) != maxKept || has("req-0") || !has("req-1") || !has("req-"+strconv.Itoa(maxKept)) {
		t.Errorf("after %d answers: %d kept, req-0 kept %v; want %d kept, the oldest gone", maxKept+1, k.n, has("req-0"), maxKept)
	}
	keep("huge", maxKeptBytes+1)
	if has("huge") || !has("req-1") || len(k.going) != 0 {
		t.Errorf("an answer over the byte budget: kept %v, the others kept %v, %d still counted as being handled; want it not kept, the others kept, none being handled", has("huge"), has("req-1"), len(k.going))
	}
}
