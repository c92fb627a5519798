package dns_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	mdns "github.com/miekg/dns"

	"github.com/overlay-net/overlay/node/tun/dns"
)

type member struct{ v4, v6 netip.Addr }

func newPeerID(t *testing.T) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// serve starts a server on 127.0.0.1 with members keyed by name and by peer
// ID (base58), as the engine's Lookup is.
func serve(t *testing.T, members map[string]member) netip.AddrPort {
	t.Helper()
	s := dns.New(dns.Config{Lookup: func(name string) (netip.Addr, netip.Addr, bool) {
		m, ok := members[name]
		return m.v4, m.v6, ok
	}})
	addr, err := s.Listen(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return addr
}

func query(t *testing.T, network string, addr netip.AddrPort, name string, qtype uint16) *mdns.Msg {
	t.Helper()
	c := &mdns.Client{Net: network, Timeout: 10 * time.Second}
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	resp, _, err := c.Exchange(m, addr.String())
	if err != nil {
		t.Fatalf("%s query %s: %v", network, name, err)
	}
	return resp
}

func TestAnswersOverUDPAndTCP(t *testing.T) {
	id := newPeerID(t)
	alice := member{netip.MustParseAddr("100.64.1.2"), netip.MustParseAddr("fd00:1:2::3")}
	bob := member{v4: netip.MustParseAddr("100.64.9.9")} // no IPv6
	addr := serve(t, map[string]member{"alice": alice, id.String(): alice, "bob": bob})

	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			cases := []struct {
				name  string
				qtype uint16
				rcode int
				want  string
			}{
				{"alice.overlay.", mdns.TypeA, mdns.RcodeSuccess, "100.64.1.2"},
				{"ALICE.Overlay.", mdns.TypeA, mdns.RcodeSuccess, "100.64.1.2"},
				{"alice.overlay.", mdns.TypeAAAA, mdns.RcodeSuccess, "fd00:1:2::3"},
				{id.String() + ".overlay.", mdns.TypeA, mdns.RcodeSuccess, "100.64.1.2"},
				{strings.ToUpper(dns.Label(id)) + ".overlay.", mdns.TypeAAAA, mdns.RcodeSuccess, "fd00:1:2::3"},
				{"bob.overlay.", mdns.TypeA, mdns.RcodeSuccess, "100.64.9.9"},
				{"bob.overlay.", mdns.TypeAAAA, mdns.RcodeSuccess, ""}, // NODATA
				{"bob.overlay.", mdns.TypeMX, mdns.RcodeSuccess, ""},
				{"carol.overlay.", mdns.TypeA, mdns.RcodeNameError, ""},
				{"x.alice.overlay.", mdns.TypeA, mdns.RcodeNameError, ""},
				{"example.com.", mdns.TypeA, mdns.RcodeRefused, ""},
				{"alice.overlay.example.", mdns.TypeA, mdns.RcodeRefused, ""},
			}
			for _, c := range cases {
				resp := query(t, network, addr, c.name, c.qtype)
				if resp.Rcode != c.rcode {
					t.Errorf("%s %s: rcode %s, want %s", c.name, mdns.TypeToString[c.qtype],
						mdns.RcodeToString[resp.Rcode], mdns.RcodeToString[c.rcode])
					continue
				}
				if resp.RecursionAvailable {
					t.Errorf("%s: claims recursion", c.name)
				}
				var got string
				for _, rr := range resp.Answer {
					switch rr := rr.(type) {
					case *mdns.A:
						got = rr.A.String()
					case *mdns.AAAA:
						got = rr.AAAA.String()
					}
				}
				if got != c.want || len(resp.Answer) > 1 {
					t.Errorf("%s %s: answer %v, want %q", c.name, mdns.TypeToString[c.qtype], resp.Answer, c.want)
				}
				if c.rcode == mdns.RcodeSuccess && c.want == "" || c.rcode == mdns.RcodeNameError {
					if len(resp.Ns) != 1 || resp.Ns[0].Header().Rrtype != mdns.TypeSOA {
						t.Errorf("%s: negative answer without SOA: %v", c.name, resp.Ns)
					}
				}
			}
		})
	}
}

func TestAnswerRefusesOddRequests(t *testing.T) {
	s := dns.New(dns.Config{})
	if s.Answer(&mdns.Msg{MsgHdr: mdns.MsgHdr{Response: true}}) != nil {
		t.Error("answered a response")
	}
	two := new(mdns.Msg)
	two.SetQuestion("a.overlay.", mdns.TypeA)
	two.Question = append(two.Question, two.Question[0])
	if r := s.Answer(two); r.Rcode != mdns.RcodeFormatError {
		t.Errorf("two questions: %s", mdns.RcodeToString[r.Rcode])
	}
	upd := new(mdns.Msg)
	upd.SetUpdate("overlay.")
	if r := s.Answer(upd); r.Rcode != mdns.RcodeNotImplemented {
		t.Errorf("update: %s", mdns.RcodeToString[r.Rcode])
	}
}

func TestCloseStopsServing(t *testing.T) {
	s := dns.New(dns.Config{})
	addr, err := s.Listen(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return")
	}
	c := &mdns.Client{Net: "tcp", Timeout: time.Second}
	m := new(mdns.Msg)
	m.SetQuestion("a.overlay.", mdns.TypeA)
	if _, _, err := c.Exchange(m, addr.String()); err == nil {
		t.Error("closed server still answers over TCP")
	}
	if err := s.Serve(nil, nil); err == nil {
		t.Error("Serve after Close succeeded")
	}
}

func TestRegisterResolvedSkipsQuietlyWithoutResolvectl(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	undo, err := dns.RegisterResolved(context.Background(), "otu0", netip.MustParseAddr("100.64.0.1"), nil)
	if !errors.Is(err, dns.ErrNoResolved) {
		t.Fatalf("err = %v, want ErrNoResolved", err)
	}
	undo()
}

func TestResolve(t *testing.T) {
	id := newPeerID(t)
	a := netip.MustParseAddr("100.64.3.4")
	lookup := func(name string) (netip.Addr, netip.Addr, bool) {
		return a, netip.Addr{}, name == "alice" || name == id.String()
	}
	for host, want := range map[string]bool{
		"alice.overlay": true, "Alice.OVERLAY.": true, id.String() + ".overlay": true,
		dns.Label(id) + ".overlay": true, "alice": false, "alice.overlay.com": false,
		"x.alice.overlay": false, ".overlay": false, "bob.overlay": false,
	} {
		if v4, _, ok := dns.Resolve(lookup, host); ok != want || ok && v4 != a {
			t.Errorf("Resolve(%q) = %v, %v; want ok=%v", host, v4, ok, want)
		}
	}
}
