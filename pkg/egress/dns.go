package egress

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// DNS: the sandbox's resolver. It answers A and AAAA queries for names the
// policy admits, with the addresses the proxy would accept for them, and
// NXDOMAIN for every other name without asking anyone: a lookup of a name
// that is not allowed carries nothing out.

// dnsTTL is what answers say; short, as the addresses are only a hint (the
// proxy resolves again and judges what it dials).
const dnsTTL = 30

// maxAnswers bounds the records in one answer, so it fits 512 bytes.
const maxAnswers = 8

// maxDNSInflight bounds the queries answered at once.
const maxDNSInflight = 32

// ServeDNS answers queries on pc until ctx ends or pc fails, then closes pc
// and returns once every query in flight is answered or dropped.
func (p *Proxy) ServeDNS(ctx context.Context, pc net.PacketConn) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	sem := make(chan struct{}, maxDNSInflight)
	for {
		buf := make([]byte, 1500)
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		select {
		case sem <- struct{}{}:
		default:
			continue // overloaded: the client retries
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if out := p.answer(ctx, buf[:n]); out != nil {
				pc.WriteTo(out, from)
			}
		}()
	}
}

// answer builds the reply to one query; nil drops it.
func (p *Proxy) answer(ctx context.Context, query []byte) []byte {
	var parser dnsmessage.Parser
	h, err := parser.Start(query)
	if err != nil || h.Response {
		return nil
	}
	resp := dnsmessage.Header{ID: h.ID, Response: true, OpCode: h.OpCode, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	q, err := parser.Question()
	if h.OpCode != 0 {
		resp.RCode = dnsmessage.RCodeNotImplemented
		return build(resp, nil, nil)
	}
	if err != nil {
		resp.RCode = dnsmessage.RCodeFormatError
		return build(resp, nil, nil)
	}
	name, ok := CanonicalName(q.Name.String())
	if !ok || !p.cfg.Policy.Named(name) {
		resp.RCode = dnsmessage.RCodeNameError
		return build(resp, &q, nil)
	}
	resp.Authoritative = false
	var network string
	switch q.Type {
	case dnsmessage.TypeA:
		network = "ip4"
	case dnsmessage.TypeAAAA:
		network = "ip6"
	default:
		return build(resp, &q, nil) // no data of that type: only addresses are answered
	}
	if q.Class != dnsmessage.ClassINET {
		return build(resp, &q, nil)
	}
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	addrs, err := p.cfg.Resolver.LookupNetIP(lctx, network, name)
	cancel()
	if err != nil {
		// Not found is said as "no address of this kind" (the name may have
		// the other kind); anything else is a failure to try again.
		var de *net.DNSError
		if !errors.As(err, &de) || !de.IsNotFound {
			resp.RCode = dnsmessage.RCodeServerFailure
		}
		return build(resp, &q, nil)
	}
	var out []netip.Addr
	for _, a := range addrs {
		a = a.Unmap()
		if (network == "ip4") == a.Is4() && p.cfg.Policy.Reachable(a) && len(out) < maxAnswers {
			out = append(out, a)
		}
	}
	return build(resp, &q, out)
}

// build encodes a reply.
func build(h dnsmessage.Header, q *dnsmessage.Question, addrs []netip.Addr) []byte {
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), h)
	b.EnableCompression()
	if q != nil {
		b.StartQuestions()
		b.Question(*q)
		b.StartAnswers()
		for _, a := range addrs {
			rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: dnsTTL}
			if a.Is4() {
				b.AResource(rh, dnsmessage.AResource{A: a.As4()})
			} else {
				b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: a.As16()})
			}
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}
