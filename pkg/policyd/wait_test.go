package policyd

import (
	"errors"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/wire"
	"github.com/nats-io/nats.go"
)

func newWait() *wait {
	return &wait{answers: make(chan wire.ApprovalAnswer, 1), gone: make(chan string, 1), freed: make(chan struct{}, 1)}
}

// answering sends an allow to w as an approver would, its grant made by
// grant; it returns when answer does.
func answering(w *wait, grant func(*wire.ApprovalAnswer) (*wire.Grant, error)) <-chan struct{} {
	done := make(chan struct{})
	m := &nats.Msg{Subject: wire.ApprovalAnswerSubject("a1"), Data: []byte(`{"verdict":"allow","for":"1h"}`)}
	go func() { defer close(done); w.answer(m, "a1", grant) }()
	return done
}

// ending runs w.end and hands back what it returned.
func ending(w *wait) <-chan bool {
	got := make(chan bool, 1)
	go func() { _, ok := w.end(); got <- ok }()
	return got
}

// TestWaitEndsWithTheAnswerInFlight: an answer whose grant is being made
// as the wait ends (a timeout, the caller gone, policyd stopping) is the
// wait's outcome once made — the approver is told "granted", and the check
// must not be denied — and if the grant fails, the wait ends unanswered.
// After the end no answer is taken: no grant is made for it.
func TestWaitEndsWithTheAnswerInFlight(t *testing.T) {
	for _, fails := range []bool{false, true} {
		w := newWait()
		entered, release := make(chan struct{}), make(chan struct{})
		answered := answering(w, func(*wire.ApprovalAnswer) (*wire.Grant, error) {
			close(entered)
			<-release
			if fails {
				return nil, errors.New("the grants bucket is away")
			}
			return &wire.Grant{ID: "g1"}, nil
		})
		<-entered
		ended := ending(w)
		select {
		case ok := <-ended:
			t.Fatalf("grant failing %v: the wait ended (answered %v) while an answer's grant was being made", fails, ok)
		case <-time.After(100 * time.Millisecond):
		}
		close(release)
		<-answered
		if ok := <-ended; ok == fails {
			t.Fatalf("grant failing %v: the wait ended answered %v", fails, ok)
		}
		late := false
		<-answering(w, func(*wire.ApprovalAnswer) (*wire.Grant, error) { late = true; return nil, nil })
		if late {
			t.Fatalf("grant failing %v: an answer after the end was taken", fails)
		}
	}
}
