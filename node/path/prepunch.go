package path

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// prePunchTTL is the IP TTL of a pre-punch packet: enough to leave the
// node's own NAT router (one hop) and die at the next hop, the ISP's, long
// before the other side's router. Behind a carrier NAT (two NATs) it opens
// the first only; the carrier's, which filters, is opened by the punch.
const prePunchTTL = 2

// maxPrePunchAddrs bounds the pre-punch packets per hole-punch exchange:
// one per address the peer offers, at most this many.
const maxPrePunchAddrs = 8

// errNoSocket: no UDP socket for the QUIC listen port is known (Sockets).
var errNoSocket = errors.New("no socket for the QUIC listen port")

// prePunch opens the node's own NAT mapping towards a peer the moment a
// hole punch names the peer's addresses, before either side dials: one
// empty UDP datagram per QUIC address, from the QUIC listen socket (the
// port the punch will use), with an IP TTL so low that it dies before it
// reaches the other side's router.
//
// Why: a router without a firewall (INPUT open) hands a punch packet that
// finds no mapping to its own stack, which answers it and keeps a conntrack
// entry for it; the node's own packet then collides with that entry and
// the router maps it to another port, so the address the other side punches
// towards is stale and every later attempt on the same ports fails too.
// With the mapping made first, the other side's packet matches it and
// passes. It is a holepunch.AddrFilter that filters nothing: libp2p calls
// FilterRemote on both sides, with the peer's addresses, before the punch.
//
// TCP gets no pre-punch: a SYN sent ahead from the listen port made the
// TCP punch through a router without a firewall fail every time in the lab
// (docs/nat.md), where without it the punch mostly succeeds.
type prePunch struct {
	host    host.Host
	sockets *Sockets
	log     *slog.Logger
	ttl     int
	// public says which addresses are worth a packet; nil: public ones
	// (manet.IsPublicAddr), as the punch dials only those.
	public func(ma.Multiaddr) bool
	// hard says whether this node's NAT maps a new port per destination
	// (netcheck's verdict; nil: it does not). Such a node punches over
	// TCP only: see FilterRemote.
	hard func() bool
	// loud, if set, is told of each punch that will send UDP at full TTL
	// towards p (spray.go schedules its attempts after such packets).
	loud func(p peer.ID)
	sent atomic.Int64 // packets sent
}

var _ holepunch.AddrFilter = (*prePunch)(nil)

// FilterLocal offers the node's addresses unchanged; on a node whose NAT
// is hard (see FilterRemote), all but the QUIC ones. The peer's QUIC dial
// to one could not pass this node's NAT (the port the NAT maps towards the
// peer is random), and it would open a new flow from the peer's QUIC
// socket: on a router without a firewall that had remapped one of that
// socket's flows (see FilterRemote), Linux NAT gives a new flow the
// mapping of the newest flow from the same socket, so such a dial (and its
// pre-punch) carries the wrong port forward to the peer's next spray.
func (pp *prePunch) FilterLocal(_ peer.ID, addrs []ma.Multiaddr) []ma.Multiaddr {
	if pp.hard != nil && pp.hard() {
		return withoutUDP(addrs)
	}
	return addrs
}

// FilterRemote pre-punches towards addrs and returns them unchanged. It
// runs inside the DCUtR exchange, so it only sends (no waiting): a few
// non-blocking system calls.
//
// On a node whose NAT maps a new port per destination (hard) it instead
// drops the peer's UDP (QUIC) addresses and sends nothing: such a punch
// cannot meet the peer's (the port it would come from is random), and its
// full-TTL packets, reaching a peer's router without a firewall, leave a
// conntrack entry there that makes the peer's spray packet for the very
// same port take another source port, so port spraying (spray.go) fails
// until 30 s after the last of them. TCP addresses stay: a TCP punch can
// still meet a peer whose router filters by address only.
func (pp *prePunch) FilterRemote(p peer.ID, addrs []ma.Multiaddr) []ma.Multiaddr {
	if pp.hard != nil && pp.hard() {
		// The punch's host.Connect dials every address the peerstore
		// has for p, the QUIC ones an earlier punch left there too.
		forgetUDP(pp.host, p)
		return withoutUDP(addrs)
	}
	pp.send(p, addrs)
	if pp.loud != nil && slices.ContainsFunc(addrs, isUDPTarget) {
		pp.loud(p)
	}
	return addrs
}

// isUDPTarget says whether a punch would dial a as QUIC.
func isUDPTarget(a ma.Multiaddr) bool {
	proto, _, ok := punchTarget(a)
	return ok && proto == "udp"
}

// withoutUDP returns addrs but the QUIC ones, in a new slice.
func withoutUDP(addrs []ma.Multiaddr) []ma.Multiaddr {
	out := make([]ma.Multiaddr, 0, len(addrs))
	for _, a := range addrs {
		if !isUDPTarget(a) {
			out = append(out, a)
		}
	}
	return out
}

// forgetUDP removes p's public QUIC addresses from the peerstore, where an
// earlier punch left them (host.Connect keeps what it dials for a while):
// libp2p's hole punch first dials every public address it knows of p
// before punching, so a hard node would otherwise send to them at full
// TTL (see FilterRemote).
func forgetUDP(h host.Host, p peer.ID) {
	ps := h.Peerstore()
	for _, a := range ps.Addrs(p) {
		if isUDPTarget(a) && manet.IsPublicAddr(a) {
			ps.SetAddr(p, a, 0)
		}
	}
}

func (pp *prePunch) send(p peer.ID, addrs []ma.Multiaddr) {
	udpPort := listenUDPPort(pp.host.Network().ListenAddresses())
	n := 0
	for _, a := range addrs {
		if n == maxPrePunchAddrs {
			return
		}
		if pp.public == nil && !manet.IsPublicAddr(a) || pp.public != nil && !pp.public(a) {
			continue
		}
		proto, to, ok := punchTarget(a)
		if !ok {
			continue
		}
		if proto != "udp" || udpPort == 0 {
			continue
		}
		err := errNoSocket
		if c := pp.sockets.udpConn(udpPort); c != nil {
			err = sendUDPWithTTL(c, nil, to, pp.ttl)
		}
		n++
		if err != nil {
			pp.log.Debug("pre-punch failed", "peer", p, "to", a, "err", err)
			continue
		}
		pp.sent.Add(1)
	}
	if n > 0 {
		pp.log.Debug("pre-punched", "peer", p, "packets", n, "ttl", pp.ttl)
	}
}

// punchTarget parses the addresses a punch dials: /ip4/A/tcp/P and
// /ip4/A/udp/P/quic-v1 (a trailing /p2p/ID allowed). proto is "tcp" or
// "udp".
func punchTarget(a ma.Multiaddr) (proto string, to netip.AddrPort, ok bool) {
	a, _ = ma.SplitFunc(a, func(c ma.Component) bool { return c.Protocol().Code == ma.P_P2P })
	if len(a) < 2 || a[0].Protocol().Code != ma.P_IP4 {
		return "", netip.AddrPort{}, false
	}
	ip, ok := netip.AddrFromSlice(a[0].RawValue())
	if !ok {
		return "", netip.AddrPort{}, false
	}
	port, err := manet.ToNetAddr(a[:2])
	if err != nil {
		return "", netip.AddrPort{}, false
	}
	switch {
	case len(a) == 2 && a[1].Protocol().Code == ma.P_TCP:
		return "tcp", netip.AddrPortFrom(ip, uint16(port.(*net.TCPAddr).Port)), true
	case len(a) == 3 && a[1].Protocol().Code == ma.P_UDP && a[2].Protocol().Code == ma.P_QUIC_V1:
		return "udp", netip.AddrPortFrom(ip, uint16(port.(*net.UDPAddr).Port)), true
	}
	return "", netip.AddrPort{}, false
}

// listenUDPPort finds the node's IPv4 QUIC listen port; 0 if none.
func listenUDPPort(listen []ma.Multiaddr) int {
	for _, a := range listen {
		if proto, to, ok := punchTarget(a); ok && proto == "udp" {
			return int(to.Port())
		}
	}
	return 0
}
