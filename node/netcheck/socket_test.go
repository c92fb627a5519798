package netcheck

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/pion/stun/v3"
)

func udpSocket(t *testing.T, serve bool) *Socket {
	t.Helper()
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := NewSocket(pc, serve, nil)
	t.Cleanup(func() { s.Close() })
	return s
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// A serving socket answers a probe with the address it came from.
func TestProbeAnswered(t *testing.T) {
	srv, cl := udpSocket(t, true), udpSocket(t, false)
	r := Run(ctxFor(t, 5*time.Second), cl, []Target{{ID: peer.ID("relay"), Addrs: []*net.UDPAddr{srv.LocalAddr()}}})
	if !r.UDP || r.Mapped != cl.LocalAddr().String() {
		t.Fatalf("udp %v mapped %q, want %s: %+v", r.UDP, r.Mapped, cl.LocalAddr(), r.Relays)
	}
	if r.MappingVaries != nil || r.Class() != ClassUnknown {
		t.Errorf("one relay: mapping_varies %v class %q, want unknown", r.MappingVaries, r.Class())
	}
	if st := srv.Stats(); st.Served != probesPerRelay {
		t.Errorf("served %d, want %d", st.Served, probesPerRelay)
	}
}

// A relay that never answers: UDP blocked, with the error per relay.
func TestProbeUnanswered(t *testing.T) {
	silent := udpSocket(t, false) // reads and drops requests
	cl := udpSocket(t, false)
	r := Run(ctxFor(t, 700*time.Millisecond), cl, []Target{
		{ID: peer.ID("a"), Addrs: []*net.UDPAddr{silent.LocalAddr()}},
		{ID: peer.ID("b")},
	})
	if r.UDP || r.Class() != ClassUDPBlocked || r.Preferred != "" {
		t.Fatalf("udp %v class %q preferred %q, want blocked", r.UDP, r.Class(), r.Preferred)
	}
	if !strings.Contains(r.Relays[0].Error, "no answer") || !strings.Contains(r.Relays[1].Error, "no UDP") {
		t.Errorf("relay errors: %+v", r.Relays)
	}
}

// Relays that see different ports: endpoint-dependent mapping.
func TestSumMappingVaries(t *testing.T) {
	r := Report{Relays: []RelayReport{
		{Relay: "a", RTTMs: 5, Mapped: "198.51.100.7:4000"},
		{Relay: "b", RTTMs: 2, Mapped: "198.51.100.7:4001"},
		{Relay: "c", Error: "no answer"},
	}}
	r.sum()
	if r.MappingVaries == nil || !*r.MappingVaries || r.Class() != ClassEndpointDependent {
		t.Fatalf("mapping_varies %v class %q", r.MappingVaries, r.Class())
	}
	if r.Preferred != "b" || !r.UDP {
		t.Errorf("preferred %q udp %v", r.Preferred, r.UDP)
	}
}

// Hairpinning: a request sent to our own (public) address comes back to
// the socket, or does not.
func TestHairpin(t *testing.T) {
	cl := udpSocket(t, false)
	yes := true
	r := Report{BehindNAT: &yes}
	r.hairpin(ctxFor(t, 5*time.Second), cl, cl.LocalAddr())
	if r.Hairpin == nil || !*r.Hairpin {
		t.Fatalf("hairpin to self = %v (%s), want true", r.Hairpin, r.HairpinNote)
	}
	silent := udpSocket(t, false)
	r = Report{BehindNAT: &yes}
	r.hairpin(ctxFor(t, 5*time.Second), cl, silent.LocalAddr())
	if r.Hairpin == nil || *r.Hairpin {
		t.Fatalf("hairpin elsewhere = %v, want false", r.Hairpin)
	}
}

// Packets that are not STUN go to the HandleOther hook, STUN stays ours.
func TestHandleOther(t *testing.T) {
	a, b := udpSocket(t, true), udpSocket(t, false)
	got := make(chan string, 4)
	a.HandleOther(func(p []byte, from *net.UDPAddr) { got <- string(p) + " from " + from.String() })
	if _, err := b.WriteTo([]byte("\x10disco"), a.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	select {
	case g := <-got:
		if want := "\x10disco from " + b.LocalAddr().String(); g != want {
			t.Errorf("other got %q, want %q", g, want)
		}
	case <-ctxFor(t, 5*time.Second).Done():
		t.Fatal("the hook never got the packet")
	}
	if r := Run(ctxFor(t, 5*time.Second), b, []Target{{ID: "a", Addrs: []*net.UDPAddr{a.LocalAddr()}}}); !r.UDP {
		t.Errorf("STUN still answered with a hook set: %+v", r)
	}
	if len(got) != 0 {
		t.Errorf("a STUN packet went to the hook: %q", <-got)
	}
}

// Past its burst a relay refuses to answer: the reflection it gives a
// spoofer is bounded.
func TestServeRate(t *testing.T) {
	srv, sink := udpSocket(t, true), udpSocket(t, false)
	req, _, _ := newRequest()
	const n = DefaultServeBurst + 200
	start := time.Now()
	for range n {
		srv.handle(req, sink.LocalAddr(), time.Now())
	}
	refill := int64(time.Since(start).Seconds()*DefaultServeRate) + 1
	st := srv.Stats()
	if st.Served > DefaultServeBurst+refill || st.Served+st.Refused != n {
		t.Fatalf("stats %+v after %d requests in %v: want at most %d served", st, n, time.Since(start), DefaultServeBurst+refill)
	}
}

// go-libp2p v0.51 hands the non-QUIC packets of its QUIC listener's socket
// to SharedNonQUICPacketConn (quicreuse), through our capture of its
// connection manager: a STUN request from outside is answered from the
// QUIC port, and the self-test passes. An upgrade that breaks this fails here.
func TestSharedQUICSocket(t *testing.T) {
	var c capture
	h, err := libp2p.New(libp2p.NoTransports, libp2p.Transport(c.QUICTransport()),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	pc, err := c.open(h.Network().ListenAddresses())
	if err != nil {
		t.Fatal(err)
	}
	s := NewSocket(pc, true, nil)
	defer s.Close()
	if err := s.SelfTest(ctxFor(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	cl := udpSocket(t, false)
	r := Run(ctxFor(t, 5*time.Second), cl, []Target{{ID: h.ID(), Addrs: []*net.UDPAddr{quicListenAddr(h.Network().ListenAddresses())}}})
	if !r.UDP || r.Mapped != cl.LocalAddr().String() {
		t.Fatalf("probe of the QUIC port: %+v", r)
	}
}

func FuzzDecode(f *testing.F) {
	req, tx, _ := newRequest()
	resp, _ := newResponse(tx, &net.UDPAddr{IP: net.IPv4(198, 51, 100, 1), Port: 4100})
	resp6, _ := newResponse(tx, &net.UDPAddr{IP: net.ParseIP("2001:db8::1"), Port: 4100})
	m, _ := stun.Build(stun.TransactionID, stun.BindingError)
	for _, seed := range [][]byte{req, resp, resp6, m.Raw, {0x00, 0x01, 0, 0}, {0x40, 1, 2, 3}, nil} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decode(b)
		if err != nil {
			return
		}
		if !p.request && p.mapped == nil {
			t.Fatalf("success without a mapped address: %x", b)
		}
		if len(b) > MaxPacket {
			t.Fatalf("decoded %d bytes, over the cap", len(b))
		}
	})
}
