package mcpserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"sync"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/moatsec/moat/pkg/wire"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nats-io/nats.go"
)

// Approval through elicitation, in two calls of the run tool (MCP's
// multi-round-trip requests; the SDK turns them into a plain elicitation
// request for clients on older protocol versions):
//
//  1. the policy's dry run says prompt: the tool answers with an input
//     request asking the person, and keeps what was asked under a random
//     state token;
//  2. the client retries with the person's answer and the token: the
//     arguments must be the very ones asked about; the run starts, and when
//     policyd asks the bus about this run (its request id), the server
//     answers with the person's verdict, using the approver key — so a
//     decline is on record as approval.denied, like one from moat deny.
//
// A client without elicitation, or a server without --approver-creds, leaves
// prompts to the bus's approvers (moat approvals, moat approve).

// approvalTTL is how long a question put to a person stays answerable.
const approvalTTL = 10 * time.Minute

// maxPendingApprovals bounds the questions kept at once.
const maxPendingApprovals = 64

// elicitKey names the input request of an approval.
const elicitKey = "moat_approval"

type asked struct {
	session string
	args    string // the run's arguments, as the model sent them
	expires time.Time
}

// approvals are the questions put to a person, by state token.
type approvals struct {
	mu sync.Mutex
	m  map[string]asked
}

func newApprovals() *approvals { return &approvals{m: map[string]asked{}} }

// put keeps a question and returns its token.
func (a *approvals) put(session, args string) string {
	b := make([]byte, 16)
	rand.Read(b)
	tok := hex.EncodeToString(b)
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	for k, v := range a.m {
		if now.After(v.expires) {
			delete(a.m, k)
		}
	}
	if len(a.m) >= maxPendingApprovals {
		for k := range a.m { // the map is full: forget one
			delete(a.m, k)
			break
		}
	}
	a.m[tok] = asked{session: session, args: args, expires: now.Add(approvalTTL)}
	return tok
}

// take removes the question under tok and reports whether it was asked in
// session about exactly args.
func (a *approvals) take(tok, session, args string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	q, ok := a.m[tok]
	delete(a.m, tok)
	return ok && q.session == session && q.args == args && time.Now().Before(q.expires)
}

// approvalRequest is the input request that asks a person about argv.
func approvalRequest(argv []string, profile string, d wire.Decision) mcp.InputRequestMap {
	var why []string
	for _, r := range d.Reasons {
		why = append(why, r.Rule+": "+r.Message)
	}
	msg := "moat asks whether this command may run under profile " + profile + ":\n\n  " +
		strings.Join(argv, " ") + "\n\nwhy it asks: " + strings.Join(why, "; ") +
		"\n\nAccept to run it once, confined by the profile; decline to refuse it."
	return mcp.InputRequestMap{elicitKey: &mcp.ElicitParams{Message: msg, RequestedSchema: &jsonschema.Schema{
		Type: "object",
		Properties: map[string]*jsonschema.Schema{
			"note": {Type: "string", Description: "why you allow or refuse it (kept in the audit trail)"},
		},
	}}}
}

// answerFor reads the person's answer from a retried call: ok is false when
// the call carries no answer to moat's question.
func answerFor(p *mcp.CallToolParamsRaw) (accept bool, note string, ok bool) {
	r, found := p.InputResponses[elicitKey].(*mcp.ElicitResult)
	if !found || r == nil {
		return false, "", false
	}
	if n, isStr := r.Content["note"].(string); isStr {
		note = n
	}
	return r.Action == "accept", note, true
}

// answerRun answers verdict, with the approver key, to the question policyd
// asks about the run requestID, until stop is called. The returned stop
// waits for the watcher to end.
func (s *mcpServer) answerRun(requestID, verdict, note string) (stop func(), err error) {
	ch := make(chan *nats.Msg, 16)
	sub, err := s.approver.Conn().ChanSubscribe(wire.SubjectApprovalAsk+".>", ch)
	if err != nil {
		return nil, err
	}
	if err := s.approver.Conn().Flush(); err != nil {
		sub.Unsubscribe()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case m := <-ch:
				var q wire.ApprovalAsk
				if wire.Decode(wire.DetectFormat(m.Header.Get(wire.HeaderContentType), m.Data), m.Data, &q) != nil || q.RequestID != requestID {
					continue
				}
				reason := "answered by a person through the MCP client"
				if note != "" {
					reason += ": " + note
				}
				if _, err := s.approver.Answer(ctx, &wire.ApprovalAnswer{ID: q.ID, Verdict: verdict, By: "mcp-elicitation", Reason: reason}); err != nil {
					s.log.Warn("cannot answer the approval", "id", q.ID, "err", err)
				}
			}
		}
	}()
	return func() {
		sub.Unsubscribe()
		cancel()
		<-done
	}, nil
}
