package netcheck

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/connmgr"
	ic "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/pnet"
	tpt "github.com/libp2p/go-libp2p/core/transport"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// ErrNoQUIC: the node has no QUIC listener, so no UDP socket to probe from
// or to serve on.
var ErrNoQUIC = errors.New("no QUIC listener")

// capture holds go-libp2p's QUIC connection managers, which own the node's
// UDP sockets; the host builds one and hands it only to transports. There
// can be more than one: AutoNAT v2 builds a second host from the same
// transport options, so open asks each.
type capture struct {
	mu  sync.Mutex
	cms []*quicreuse.ConnManager
}

// QUICTransport is go-libp2p's QUIC transport constructor (quic.NewTransport),
// for libp2p.Transport, that also keeps the connection manager it is given.
func (c *capture) QUICTransport() any {
	return func(key ic.PrivKey, cm *quicreuse.ConnManager, psk pnet.PSK, gater connmgr.ConnectionGater,
		rcmgr network.ResourceManager) (tpt.Transport, error) {
		c.mu.Lock()
		c.cms = append(c.cms, cm)
		c.mu.Unlock()
		return quic.NewTransport(key, cm, psk, gater, rcmgr)
	}
}

// open returns a packet conn for the non-QUIC packets of the UDP socket of
// the first IPv4 QUIC listener among listen (IPv6 if none), through
// go-libp2p's SharedNonQUICPacketConn. The QUIC listener must exist.
func (c *capture) open(listen []ma.Multiaddr) (net.PacketConn, error) {
	return c.openAddr(quicListenAddr(listen))
}

// openAddr is open for the QUIC listener on laddr.
func (c *capture) openAddr(laddr *net.UDPAddr) (net.PacketConn, error) {
	c.mu.Lock()
	cms := slices.Clone(c.cms)
	c.mu.Unlock()
	if len(cms) == 0 || laddr == nil {
		return nil, ErrNoQUIC
	}
	network := "udp4"
	if laddr.IP.To4() == nil {
		network = "udp6"
	}
	var err error
	for _, cm := range cms {
		var pc net.PacketConn
		if pc, err = cm.SharedNonQUICPacketConn(network, laddr); err == nil {
			return pc, nil
		}
	}
	return nil, fmt.Errorf("share the QUIC socket %s: %w", laddr, err)
}

// quicListenAddr is the UDP address of the first IPv4 QUIC listen address,
// or of the first IPv6 one when there is no IPv4 one.
func quicListenAddr(listen []ma.Multiaddr) *net.UDPAddr {
	var v6 *net.UDPAddr
	for _, a := range listen {
		u := quicUDPAddr(a)
		switch {
		case u == nil:
		case u.IP.To4() != nil:
			return u
		case v6 == nil:
			v6 = u
		}
	}
	return v6
}

// otherQUICAddrs are the UDP addresses of the QUIC listen addresses of
// first's family other than first, at most max.
func otherQUICAddrs(listen []ma.Multiaddr, first *net.UDPAddr, max int) []*net.UDPAddr {
	var out []*net.UDPAddr
	for _, a := range listen {
		u := quicUDPAddr(a)
		if u == nil || u.String() == first.String() || !sameFamily(u, first) || len(out) == max {
			continue
		}
		out = append(out, u)
	}
	return out
}

// quicUDPAddr is the UDP address of a /ip4|ip6/.../udp/PORT/quic-v1
// multiaddr (anything after quic-v1, such as /p2p/, is ignored); nil for
// any other address.
func quicUDPAddr(a ma.Multiaddr) *net.UDPAddr {
	var head ma.Multiaddr
	isQUIC := false
	for _, c := range a {
		if c.Protocol().Code == ma.P_QUIC_V1 {
			isQUIC = true
			break
		}
		head = append(head, c)
	}
	if !isQUIC || len(head) != 2 {
		return nil
	}
	na, err := manet.ToNetAddr(head)
	if err != nil {
		return nil
	}
	u, _ := na.(*net.UDPAddr)
	return u
}

// Targets are the relays to probe: each configured relay (full /p2p/
// addresses) with the QUIC addresses configured and those the peerstore
// holds for it (identify, public ones only), of the family of local,
// unspecified ones left out. Relays keep their configured order.
func Targets(relays []ma.Multiaddr, ps peerstore.Peerstore, local *net.UDPAddr) []Target {
	infos, err := peer.AddrInfosFromP2pAddrs(relays...)
	if err != nil {
		return nil
	}
	var out []Target
	seen := map[peer.ID]bool{}
	for _, a := range relays {
		id, err := peer.IDFromP2PAddr(a)
		if err != nil || seen[id] {
			continue
		}
		seen[id] = true
		var addrs []ma.Multiaddr
		for _, in := range infos {
			if in.ID == id {
				addrs = append(addrs, in.Addrs...)
			}
		}
		if ps != nil {
			// What identify learned: public addresses only, as a relay
			// also lists its loopback and private ones.
			for _, a := range ps.Addrs(id) {
				if manet.IsPublicAddr(a) {
					addrs = append(addrs, a)
				}
			}
		}
		t := Target{ID: id}
		dup := map[string]bool{}
		for _, a := range addrs {
			u := quicUDPAddr(a)
			if u == nil || u.IP.IsUnspecified() || dup[u.String()] || !sameFamily(u, local) {
				continue
			}
			dup[u.String()] = true
			t.Addrs = append(t.Addrs, u)
		}
		out = append(out, t)
	}
	return out
}

func sameFamily(a, b *net.UDPAddr) bool {
	return b == nil || (a.IP.To4() != nil) == (b.IP.To4() != nil)
}
