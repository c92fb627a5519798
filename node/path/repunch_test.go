package path

import (
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The node starts at most maxRepunch punches per peer within
// repunchWindow, and runs one keepPunching loop per peer.
func TestRepunchBounds(t *testing.T) {
	var p puncher
	a, b := peer.ID("a"), peer.ID("b")
	for i := range maxRepunch {
		if !p.allow(a) {
			t.Fatalf("punch %d refused, want %d allowed", i+1, maxRepunch)
		}
	}
	if p.allow(a) {
		t.Fatalf("punch %d allowed within %s", maxRepunch+1, repunchWindow)
	}
	p.refund(a)
	if !p.allow(a) || p.allow(a) {
		t.Fatal("a refunded punch was not allowed again, or more were")
	}
	if !p.allow(b) {
		t.Fatal("another peer's punch refused")
	}
	if !p.keep(a) || p.keep(a) {
		t.Fatal("want one keepPunching loop per peer")
	}
	p.unkeep(a)
	if !p.keep(a) {
		t.Fatal("a peer's loop could not start again after it ended")
	}
	p.close()
	if p.keep(b) || p.allow(b) {
		t.Fatal("punching goes on after close")
	}
}

// A node whose NAT is hard punches without QUIC addresses, the peer's and
// its own, and sends nothing; an easy one keeps them and notes the loud
// punch.
func TestFilterRemoteHardSide(t *testing.T) {
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	remote := addrs("/ip4/7.7.1.1/udp/4002/quic-v1", "/ip4/7.7.1.1/tcp/4001", "/ip4/7.7.1.1/udp/4003/quic-v1/p2p/12D3KooWGzBtHU8cr9eRgfuHa5J3T3WDiSMjcAG3ffGCT9ccE5gS")
	hard := false
	var loud []peer.ID
	pp := &prePunch{host: h, log: slog.New(slog.DiscardHandler), ttl: 2,
		hard: func() bool { return hard }, loud: func(p peer.ID) { loud = append(loud, p) }}
	if got := pp.FilterRemote("p", slices.Clone(remote)); len(got) != 3 || len(loud) != 1 || loud[0] != "p" {
		t.Fatalf("easy side: %v, loud %v; want the addresses unchanged, one loud punch noted", got, loud)
	}
	hard = true
	h.Peerstore().AddAddrs("p", remote, time.Hour) // as the easy punch's host.Connect left them
	got := pp.FilterRemote("p", slices.Clone(remote))
	if left := strsOf(h.Peerstore().Addrs("p")); !slices.Equal(left, []string{"/ip4/7.7.1.1/tcp/4001"}) {
		t.Errorf("hard side left %v in the peerstore, want the TCP address alone", left)
	}
	if len(got) != 1 || got[0].String() != "/ip4/7.7.1.1/tcp/4001" || len(loud) != 1 || pp.sent.Load() != 0 {
		t.Fatalf("hard side: %v, loud %v, sent %d; want the TCP address alone, nothing sent", got, loud, pp.sent.Load())
	}
	if got := pp.FilterRemote("p", addrs("/ip4/7.7.1.1/udp/4002/quic-v1")); len(got) != 0 {
		t.Fatalf("hard side, QUIC only: %v", got)
	}
	if got := pp.FilterLocal("p", slices.Clone(remote)); len(got) != 1 || got[0].String() != "/ip4/7.7.1.1/tcp/4001" {
		t.Fatalf("hard side offers %v, want the TCP address alone", got)
	}
	hard = false
	if got := pp.FilterLocal("p", slices.Clone(remote)); len(got) != 3 {
		t.Fatalf("easy side offers %v, want all", got)
	}
}

// forgetUDP drops the public QUIC addresses a punch left in the peerstore,
// and only those.
func TestForgetUDP(t *testing.T) {
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	p := peer.ID("p")
	h.Peerstore().AddAddrs(p, addrs("/ip4/7.7.1.1/udp/4002/quic-v1", "/ip4/7.7.1.1/tcp/4001",
		"/ip4/10.0.0.1/udp/4002/quic-v1"), time.Hour)
	forgetUDP(h, p)
	got := strsOf(h.Peerstore().Addrs(p))
	if want := []string{"/ip4/10.0.0.1/udp/4002/quic-v1", "/ip4/7.7.1.1/tcp/4001"}; !slices.Equal(got, want) {
		t.Errorf("after forgetUDP: %v, want %v", got, want)
	}
}
