package egress

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Resolver looks names up; *net.Resolver is one. Tests map names to their
// own servers with another.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Dialer makes the outgoing connections; *net.Dialer is one. The proxy only
// ever hands it an "ip:port" that the policy has already accepted, so a test
// dialer can fail the test on any other address before a packet leaves.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Config configures a Proxy.
type Config struct {
	Policy   *Policy
	Resolver Resolver // default net.DefaultResolver
	Dialer   Dialer   // default a net.Dialer with a 10 s timeout
	// OnConn hears of every connection once it is over, allowed or not.
	OnConn func(Conn)
	// OnDeny hears of every denial as it happens (the run's stderr).
	OnDeny func(Denial)
	// Ask, when set, puts a destination the lists refuse (never a deny
	// entry's or a special address) to a person while the connection
	// waits (ask.go); OnAsk hears of each question as it is put.
	Ask   func(context.Context, Ask) Answer
	OnAsk func(Ask)
	// MaxConns bounds the client connections served at once (each holds a
	// 64 KiB buffer and a goroutine in sandboxd, and a 256 KiB one while an
	// HTTP body passes); past it a new connection is closed at once.
	// Default 256.
	MaxConns int
}

// Conn is the record of one connection through the proxy (one upstream
// connection, or one refused attempt).
type Conn struct {
	Proto    string        `json:"proto"` // http, connect, socks5
	Host     string        `json:"host"`
	Port     int           `json:"port"`
	Addr     string        `json:"addr,omitempty"` // the address dialed
	Allowed  bool          `json:"allowed"`
	Rule     string        `json:"rule"`
	Entry    string        `json:"entry,omitempty"`
	Reason   string        `json:"reason,omitempty"`
	Up       int64         `json:"bytes_up"`   // from the command
	Down     int64         `json:"bytes_down"` // to the command
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"duration_ns"`
}

// Proxy serves one run's egress: HTTP (absolute URIs), CONNECT and SOCKS5
// on one listener, DNS on a packet socket. Its connections end with the
// context given to Serve.
type Proxy struct {
	cfg      Config
	mu       sync.Mutex
	denied   map[string]Denial
	approved map[string]string  // host:port → who allowed it for the run
	asking   map[string]*asking // host:port → the question in flight
}

// maxDenied bounds the denials a proxy remembers for the run's result.
const maxDenied = 64

// New makes a proxy.
func New(cfg Config) *Proxy {
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	if cfg.Dialer == nil {
		cfg.Dialer = &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	}
	if cfg.Policy == nil {
		cfg.Policy = &Policy{}
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 256
	}
	return &Proxy{cfg: cfg, denied: map[string]Denial{}, approved: map[string]string{}, asking: map[string]*asking{}}
}

// Serve accepts connections on ln until ctx ends or ln fails, then closes
// ln and every connection it accepted, and returns once their goroutines
// are done.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel: every connection closes with ctx
	defer cancel()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	slots := make(chan struct{}, p.cfg.MaxConns)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("egress proxy: accept: %w", err)
		}
		select {
		case slots <- struct{}{}:
		default:
			c.Close() // too many at once: the client sees the connection end
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			p.serveConn(ctx, c)
		}()
	}
}

// handshakeTimeout bounds how long a client may take to say where it goes.
const handshakeTimeout = 30 * time.Second

func (p *Proxy) serveConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	c.SetReadDeadline(time.Now().Add(handshakeTimeout))
	br := bufio.NewReaderSize(c, maxHead)
	first, err := br.Peek(1)
	if err != nil {
		return
	}
	switch first[0] {
	case socksVersion:
		p.serveSOCKS(ctx, c, br)
	case 4:
		return // SOCKS4 carries no host names worth trusting: not served
	default:
		p.serveHTTP(ctx, c, br)
	}
}

// dest is one admitted destination, connected.
type dest struct {
	conn net.Conn
	rec  *Conn
}

// connect judges host:port by name, resolves it, judges each address, and
// dials the first one that is accepted and answers. On refusal it returns
// the denial (already reported) and a nil conn; on a resolution or dial
// failure, a nil denial and the error.
func (p *Proxy) connect(ctx context.Context, proto, host string, port int) (*dest, *Denial, error) {
	rec := &Conn{Proto: proto, Host: host, Port: port, Start: time.Now()}
	v := p.cfg.Policy.Admit(host, port)
	if !v.OK && p.cfg.Ask != nil && askable(v) {
		v = p.ask(ctx, proto, host, port, v)
	}
	if !v.OK {
		return nil, p.deny(rec, v), nil
	}
	rec.Rule, rec.Entry = v.Rule, v.Entry
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a.Unmap()}
	} else {
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		addrs, err = p.cfg.Resolver.LookupNetIP(lctx, "ip", host)
		cancel()
		if err != nil || len(addrs) == 0 {
			rec.Rule, rec.Reason = RuleUnresolved, fmt.Sprintf("cannot resolve %s: %v", host, err)
			p.record(rec)
			return nil, nil, errors.New(rec.Reason)
		}
	}
	var ok []netip.Addr
	var refused Verdict
	for _, a := range addrs {
		av := p.cfg.Policy.Address(a, port)
		if av.OK {
			ok = append(ok, a.Unmap())
			if av.Entry != "" {
				rec.Entry = av.Entry
			}
		} else if refused.Rule == "" {
			refused = av
		}
	}
	if len(ok) == 0 {
		rec.Addr = netip.AddrPortFrom(addrs[0].Unmap(), uint16(port)).String()
		refused.Reason = host + " resolves to " + addrs[0].Unmap().String() + ": " + refused.Reason
		return nil, p.deny(rec, refused), nil
	}
	var lastErr error
	for _, a := range ok {
		ap := netip.AddrPortFrom(a, uint16(port)).String()
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c, err := p.cfg.Dialer.DialContext(dctx, "tcp", ap)
		cancel()
		if err == nil {
			rec.Addr, rec.Allowed = ap, true
			return &dest{conn: c, rec: rec}, nil, nil
		}
		lastErr = err
	}
	rec.Addr = netip.AddrPortFrom(ok[0], uint16(port)).String()
	rec.Rule, rec.Reason = RuleUnreachable, fmt.Sprintf("cannot connect to %s: %v", joinHostPort(host, port), lastErr)
	p.record(rec)
	return nil, nil, errors.New(rec.Reason)
}

// deny records a refusal and reports it.
func (p *Proxy) deny(rec *Conn, v Verdict) *Denial {
	if _, ok := CanonicalName(rec.Host); !ok {
		if _, err := netip.ParseAddr(rec.Host); err != nil {
			rec.Host = strconv.QuoteToASCII(rec.Host[:min(len(rec.Host), 80)])
		}
	}
	d := &Denial{Proto: rec.Proto, Host: rec.Host, Port: rec.Port, Rule: v.Rule, Entry: v.Entry, Reason: v.Reason,
		Fix: p.cfg.Policy.Fix(rec.Host, rec.Port, v)}
	rec.Allowed, rec.Rule, rec.Entry, rec.Reason = false, v.Rule, v.Entry, v.Reason
	p.remember(*d)
	p.record(rec)
	return d
}

// remember keeps a denial for the run's result and reports it.
func (p *Proxy) remember(d Denial) {
	p.mu.Lock()
	key := d.Rule + " " + d.Dest()
	if _, seen := p.denied[key]; !seen && len(p.denied) < maxDenied {
		p.denied[key] = d
	}
	p.mu.Unlock()
	if p.cfg.OnDeny != nil {
		p.cfg.OnDeny(d)
	}
}

// record hands a finished connection to OnConn.
func (p *Proxy) record(rec *Conn) {
	rec.Duration = time.Since(rec.Start)
	if p.cfg.OnConn != nil {
		p.cfg.OnConn(*rec)
	}
}

// Denied lists the destinations refused so far, once each, sorted.
func (p *Proxy) Denied() []Denial {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Denial, 0, len(p.denied))
	for _, d := range p.denied {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Host != out[j].Host {
			return out[i].Host < out[j].Host
		}
		return out[i].Port < out[j].Port
	})
	return out
}

// Denial is a refused destination, said so a model can act on it.
type Denial struct {
	Proto  string `json:"proto"`
	Host   string `json:"host"`
	Port   int    `json:"port"`
	Rule   string `json:"rule"`
	Entry  string `json:"entry,omitempty"`
	Reason string `json:"reason"`
	Fix    string `json:"fix"`
}

// Dest is host:port.
func (d Denial) Dest() string { return joinHostPort(d.Host, d.Port) }

// String is the line on the run's stderr and the body of a 403.
func (d Denial) String() string {
	return fmt.Sprintf("moat: network access to %s denied (%s): %s; to allow it: %s", d.Dest(), d.Rule, d.Reason, d.Fix)
}

// Header is the X-Moat-Deny header's value.
func (d Denial) Header() string {
	return "host=" + strconv.QuoteToASCII(d.Dest()) + "; rule=" + strconv.QuoteToASCII(d.Rule) + "; allow=" + strconv.QuoteToASCII(d.Fix)
}
