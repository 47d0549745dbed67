package egress

import (
	"context"
	"fmt"
	"time"
)

// RuleApproved names a connection a person allowed (Conn.Rule).
const RuleApproved = "net.approved"

// Ask is a destination the lists refuse, put to a person (Config.Ask).
type Ask struct {
	Proto   string
	Host    string
	Port    int
	Verdict Verdict // the refusal: net.not-allowed, net.port, net.no-egress or net.prompt
}

// Answer is what came back. A refusal (a person's, a timeout, no one to
// ask) is said in Rule and Reason, and the connection gets the ordinary
// denial.
type Answer struct {
	OK     bool
	Run    bool   // allowed for the rest of the run (else this connection only)
	Entry  string // who allowed it, for the record ("approval <id> by alice")
	Rule   string // a refusal's rule (approval-timeout, approval.denied, …)
	Reason string
}

// askable reports whether a refusal may be put to a person: a host the
// lists do not name (or name for other ports), or a rules file's prompt —
// never a deny entry, a special address, or a protocol fault.
func askable(v Verdict) bool {
	switch v.Rule {
	case RuleNotAllowed, RulePort, RuleNoEgress, RulePrompt:
		return true
	}
	return false
}

// maxAsking bounds the destinations one run asks about at once; past it a
// connection that would ask is refused at once.
const maxAsking = 8

// maxApproved bounds the destinations a run remembers as allowed for it.
const maxApproved = 256

// asking is one question in flight: connections to the same destination
// wait for its answer instead of asking again.
type asking struct {
	done chan struct{}
	ans  Answer
}

// ask puts a refused destination to a person through Config.Ask, holding
// the connection until the answer (bounded by the approval timeout on the
// other side, and by ctx: the run's end). One question per destination at
// a time; an answer for the run is remembered.
func (p *Proxy) ask(ctx context.Context, proto, host string, port int, v Verdict) Verdict {
	key := joinHostPort(host, port)
	for {
		p.mu.Lock()
		if entry, ok := p.approved[key]; ok {
			p.mu.Unlock()
			return Verdict{OK: true, Rule: RuleApproved, Entry: entry}
		}
		if q, ok := p.asking[key]; ok {
			p.mu.Unlock()
			select {
			case <-q.done:
			case <-ctx.Done():
				return v
			}
			if !q.ans.OK {
				return refusedAsk(v, q.ans)
			}
			// For the run: remembered, admitted at the top. Once: that was
			// another connection's answer; this one asks anew.
			continue
		}
		if len(p.asking) >= maxAsking {
			p.mu.Unlock()
			v.Reason += fmt.Sprintf("; %d destinations are already being asked about, the most a run may ask at once", maxAsking)
			return v
		}
		q := &asking{done: make(chan struct{})}
		p.asking[key] = q
		p.mu.Unlock()

		if p.cfg.OnAsk != nil {
			p.cfg.OnAsk(Ask{Proto: proto, Host: host, Port: port, Verdict: v})
		}
		actx, cancel := context.WithTimeout(ctx, askTimeout)
		q.ans = p.cfg.Ask(actx, Ask{Proto: proto, Host: host, Port: port, Verdict: v})
		cancel()
		p.mu.Lock()
		if q.ans.OK && q.ans.Run && len(p.approved) < maxApproved {
			p.approved[key] = q.ans.Entry + " (for the run)"
		}
		delete(p.asking, key)
		p.mu.Unlock()
		close(q.done)
		if !q.ans.OK {
			return refusedAsk(v, q.ans)
		}
		return Verdict{OK: true, Rule: RuleApproved, Entry: q.ans.Entry}
	}
}

// refusedAsk is the denial after an ask came back refused: the original
// rule (so the fix still says how to allow it), the answer's reason added.
func refusedAsk(v Verdict, a Answer) Verdict {
	why := a.Reason
	if why == "" {
		why = a.Rule
	}
	if why != "" {
		v.Reason += "; asked, and " + why
	}
	return v
}

// askTimeout bounds a question whatever the asker does (policyd's approval
// timeout is the usual bound, 60 s by default).
const askTimeout = 10 * time.Minute
