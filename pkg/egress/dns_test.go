package egress_test

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/moatsec/moat/pkg/egress"
	"golang.org/x/net/dns/dnsmessage"
)

// query asks the fixture's DNS for name and type and returns the answer.
func query(t *testing.T, addr, name string, typ dnsmessage.Type) (dnsmessage.RCode, []netip.Addr) {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 42, RecursionDesired: true})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET})
	msg, _ := b.Finish()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("DNS %s: %v", name, err)
	}
	var p dnsmessage.Parser
	h, err := p.Start(buf[:n])
	if err != nil || h.ID != 42 || !h.Response {
		t.Fatalf("DNS %s: header %+v, %v", name, h, err)
	}
	p.SkipAllQuestions()
	var out []netip.Addr
	for {
		rh, err := p.AnswerHeader()
		if err != nil {
			break
		}
		switch rh.Type {
		case dnsmessage.TypeA:
			r, _ := p.AResource()
			out = append(out, netip.AddrFrom4(r.A))
		case dnsmessage.TypeAAAA:
			r, _ := p.AAAAResource()
			out = append(out, netip.AddrFrom16(r.AAAA))
		default:
			p.SkipAnswer()
		}
	}
	return h.RCode, out
}

func TestDNS(t *testing.T) {
	n, _ := world(t)
	n.Name("mixed.test", "127.0.0.1", "93.184.215.200", "10.0.0.1")
	n.Name("v6.test", "2606:4700::1111", "fd00::1")
	f := start(t, n, false, []string{"allowed.test", "mixed.test", "rebind.test", "v6.test", "*.wild.test"}, []string{"v6.test:443"})
	allowedAddr, _ := n.LookupNetIP(t.Context(), "ip4", "allowed.test")
	before := n.Lookups("")

	for _, tc := range []struct {
		name  string
		typ   dnsmessage.Type
		rcode dnsmessage.RCode
		addrs []string
	}{
		{"allowed.test.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{allowedAddr[0].String()}},
		{"ALLOWED.test.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{allowedAddr[0].String()}},
		{"allowed.test.", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, nil},
		{"allowed.test.", dnsmessage.TypeTXT, dnsmessage.RCodeSuccess, nil},
		{"mixed.test.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"93.184.215.200"}}, // only what the proxy accepts
		{"rebind.test.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, nil},
		{"v6.test.", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, []string{"2606:4700::1111"}}, // port 80 still allowed
		{"nothere.wild.test.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, nil},                  // allowed, but has no address
	} {
		rcode, addrs := query(t, f.dns, tc.name, tc.typ)
		if rcode != tc.rcode || len(addrs) != len(tc.addrs) {
			t.Errorf("%s %v: got %v %v, want %v %v", tc.name, tc.typ, rcode, addrs, tc.rcode, tc.addrs)
			continue
		}
		for i := range addrs {
			if addrs[i].String() != tc.addrs[i] {
				t.Errorf("%s: got %v, want %v", tc.name, addrs, tc.addrs)
			}
		}
	}
	if n.Lookups("") == before {
		t.Fatal("allowed names were never looked up upstream")
	}

	// Names the policy does not admit: NXDOMAIN, and nobody upstream asked.
	before = n.Lookups("")
	for _, name := range []string{"other.test.", "c2VjcmV0.exfil.example.", "wild.test.", "meta.test.", "x.allowed.test."} {
		for _, typ := range []dnsmessage.Type{dnsmessage.TypeA, dnsmessage.TypeAAAA, dnsmessage.TypeTXT} {
			if rcode, addrs := query(t, f.dns, name, typ); rcode != dnsmessage.RCodeNameError || len(addrs) != 0 {
				t.Errorf("%s %v: got %v %v, want NXDOMAIN", name, typ, rcode, addrs)
			}
		}
	}
	if got := n.Lookups(""); got != before {
		t.Fatalf("%d upstream lookups for names not allowed", got-before)
	}
}

func TestDNSGarbage(t *testing.T) {
	n, _ := world(t)
	f := start(t, n, false, []string{"allowed.test"}, nil)
	c, err := net.Dial("udp", f.dns)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, b := range [][]byte{{}, {1}, make([]byte, 12), []byte("GET / HTTP/1.1\r\n\r\n")} {
		c.Write(b)
	}
	// The responder still answers.
	if rcode, _ := query(t, f.dns, "allowed.test.", dnsmessage.TypeA); rcode != dnsmessage.RCodeSuccess {
		t.Fatalf("after garbage: %v", rcode)
	}
	if n.Lookups("") != 1 {
		t.Fatalf("lookups: %d", n.Lookups(""))
	}
}

var _ = egress.RuleAllowed
