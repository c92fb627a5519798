package tun

import (
	"crypto/sha256"
	"net/netip"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/cert"
)

// The overlay's address prefixes. Routes for both point at the interface;
// nothing else on the host changes.
//
// Prefix4 is the shared address space of RFC 6598 (carrier-grade NAT), as
// Tailscale uses it: private, and rarely routed on a LAN. Prefix6 is a
// fixed ULA /48 (RFC 4193): fd, then the 40-bit global ID 6f7665726c, the
// ASCII of "overl". Every overlay network shares these prefixes: a host is
// a member of one network per interface.
var (
	Prefix4 = netip.MustParsePrefix("100.64.0.0/10")
	Prefix6 = netip.MustParsePrefix("fd6f:7665:726c::/48")
)

// AddrsFor returns member p's overlay addresses: those its certificate c
// names, when it names them, else ones derived from the peer ID (Derive).
// c may be nil. The result is stable: the same inputs give the same
// addresses on every node.
func AddrsFor(p peer.ID, c *cert.Certificate) (v4, v6 netip.Addr) {
	v4, v6 = Derive(p)
	if c != nil && c.IPv4.IsValid() {
		v4 = c.IPv4
	}
	if c != nil && c.IPv6.IsValid() {
		v6 = c.IPv6
	}
	return v4, v6
}

// Derive maps a peer ID into the prefixes: the low 22 bits of the first
// four bytes of SHA-256(peer ID) into Prefix4, the first 10 bytes of the
// hash into the 80 host bits of Prefix6. Two members can collide in IPv4
// (22 bits: likely past ~2,000 members); the engine detects and reports
// it, and a certificate's ipv4 field resolves it.
func Derive(p peer.ID) (v4, v6 netip.Addr) {
	h := sha256.Sum256([]byte(p))
	b4 := Prefix4.Addr().As4()
	b4[1] |= h[1] & 0x3f
	b4[2], b4[3] = h[2], h[3]
	// The first and last address of the /10 are left out.
	switch {
	case b4[1] == 64 && b4[2] == 0 && b4[3] == 0:
		b4[3] = 1
	case b4[1] == 127 && b4[2] == 255 && b4[3] == 255:
		b4[3] = 254
	}
	b6 := Prefix6.Addr().As16()
	copy(b6[6:], h[4:14])
	if b6[15] == 0 && b6[14] == 0 && b6[6] == 0 && b6[7] == 0 {
		b6[15] = 1 // not the subnet-router anycast address of a /64
	}
	return netip.AddrFrom4(b4), netip.AddrFrom16(b6)
}

// InOverlay reports whether a lies in one of the overlay's prefixes.
func InOverlay(a netip.Addr) bool {
	return Prefix4.Contains(a) || Prefix6.Contains(a)
}
