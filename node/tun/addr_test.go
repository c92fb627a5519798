package tun_test

import (
	"net/netip"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/node/tun"
)

func newID(t *testing.T) peer.ID {
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

func TestDeriveIsStableAndInsidePrefixes(t *testing.T) {
	seen := map[netip.Addr]bool{}
	for range 500 {
		id := newID(t)
		v4, v6 := tun.Derive(id)
		if !tun.Prefix4.Contains(v4) || !tun.Prefix6.Contains(v6) {
			t.Fatalf("Derive(%s) = %s, %s: outside %s, %s", id, v4, v6, tun.Prefix4, tun.Prefix6)
		}
		if v4 == tun.Prefix4.Addr() || v4 == netip.MustParseAddr("100.127.255.255") {
			t.Fatalf("Derive(%s) = %s: the prefix's first or last address", id, v4)
		}
		if again, _ := tun.Derive(id); again != v4 {
			t.Fatalf("Derive(%s) not stable: %s then %s", id, v4, again)
		}
		if seen[v6] {
			t.Fatalf("IPv6 %s derived twice", v6)
		}
		seen[v6] = true
	}
}

func TestAddrsForPrefersTheCertificate(t *testing.T) {
	id := newID(t)
	d4, d6 := tun.Derive(id)
	c := &cert.Certificate{IPv4: netip.MustParseAddr("100.100.1.2")}
	v4, v6 := tun.AddrsFor(id, c)
	if v4 != c.IPv4 || v6 != d6 {
		t.Fatalf("AddrsFor with ipv4 only = %s %s, want %s %s", v4, v6, c.IPv4, d6)
	}
	c.IPv6 = netip.MustParseAddr("fd00::1")
	if _, v6 := tun.AddrsFor(id, c); v6 != c.IPv6 {
		t.Fatalf("AddrsFor with ipv6 = %s, want %s", v6, c.IPv6)
	}
	if v4, v6 := tun.AddrsFor(id, nil); v4 != d4 || v6 != d6 {
		t.Fatalf("AddrsFor without a certificate = %s %s, want the derived %s %s", v4, v6, d4, d6)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []tun.Options{{}, {Mode: "kernel", MTU: 1280}, {Mode: "userspace", MTU: 9000}} {
		if err := o.Validate(); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
	for _, o := range []tun.Options{{Mode: "tap"}, {MTU: 1000}, {MTU: 70000}, {Name: "a-name-far-too-long"}} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}
