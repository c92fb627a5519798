package path

import (
	"slices"
	"strings"
	"sync"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/overlay-net/overlay/node/book"
)

// observed keeps what trusted peers see this node's address as, and turns
// it into the public addresses hole punching offers.
//
// Stock go-libp2p believes an observed address only once 4 distinct peers
// report it, because any stranger can lie about it. A NAT'd overlay peer
// talks to one or two relays, so it would never learn its address and
// never punch. The overlay believes one report, but only from a peer it
// already trusts with its traffic: a relay it was configured with, or a
// member that passed the handshake (and so holds the network's secret, when
// there is one). The worst such a peer can do by lying is make hole punches
// fail or send a few punch packets (3 attempts per relayed connection) to
// an address of its choice; it can already drop everything relayed through
// it. Strangers' reports are never used. The addresses are offered only in
// hole punching, never advertised through identify or the DHT, so a wrong
// guess costs no one a dial timeout.
type observed struct {
	trusted func(peer.ID) bool

	mu  sync.Mutex
	obs map[network.Conn]observation
}

type observation struct {
	peer  peer.ID
	addr  ma.Multiaddr // what the peer saw, e.g. /ip4/7.7.1.1/tcp/40122/ws
	local ma.Multiaddr // our end of that connection
}

func newObserved(trusted func(peer.ID) bool) *observed {
	return &observed{trusted: trusted, obs: map[network.Conn]observation{}}
}

// note records what the peer at the other end of c sees; it reports
// whether the observation is new and usable.
func (o *observed) note(p peer.ID, c network.Conn, addr ma.Multiaddr) bool {
	if c == nil || addr == nil || !manet.IsPublicAddr(addr) || book.IsRelayed(addr) {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if prev, ok := o.obs[c]; ok && prev.addr.Equal(addr) {
		return false
	}
	o.obs[c] = observation{peer: p, addr: addr, local: c.LocalMultiaddr()}
	return true
}

// drop forgets what was seen over a closed connection.
func (o *observed) drop(c network.Conn) {
	o.mu.Lock()
	delete(o.obs, c)
	o.mu.Unlock()
}

// addrs returns the public addresses trusted peers see, one per listen
// address in listen (TCP and QUIC only). The port is the observed one when
// the observation came over a connection from that very listen port (TCP
// with port reuse, QUIC); otherwise it is the listen port itself, which is
// right behind the many NATs that keep a source port when they can (Linux
// MASQUERADE, most home routers) and harmlessly wrong behind the others.
func (o *observed) addrs(listen []ma.Multiaddr) []ma.Multiaddr {
	o.mu.Lock()
	seen := make([]observation, 0, len(o.obs))
	for _, ob := range o.obs {
		seen = append(seen, ob)
	}
	o.mu.Unlock()
	var out []ma.Multiaddr
	for _, ob := range seen {
		if !o.trusted(ob.peer) {
			continue
		}
		for _, la := range listen {
			if a := candidate(ob, la); a != nil && !slices.ContainsFunc(out, a.Equal) {
				out = append(out, a)
			}
		}
	}
	return out
}

// candidate builds the public address for listen address la from one
// observation, or nil when la is not a plain TCP or QUIC address of the
// observation's IP family.
func candidate(ob observation, la ma.Multiaddr) ma.Multiaddr {
	ip, tr, port, ok := thinWaist(la)
	quic := ok && len(la) == 3 && tr == "udp" && la[2].Protocol().Code == ma.P_QUIC_V1
	if !ok || !(len(la) == 2 && tr == "tcp" || quic) {
		return nil
	}
	obIP, obTr, obPort, ok := thinWaist(ob.addr)
	if !ok || ipFamily(ip) != ipFamily(obIP) {
		return nil
	}
	if _, lTr, lPort, ok := thinWaist(ob.local); ok && lTr == tr && lPort == port && obTr == tr {
		port = obPort
	}
	s := "/" + ipFamily(obIP) + "/" + obIP + "/" + tr + "/" + port
	if quic {
		s += "/quic-v1"
	}
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		return nil
	}
	return a
}

// thinWaist reads IP, transport (tcp or udp) and port from the start of a,
// whatever follows them.
func thinWaist(a ma.Multiaddr) (ip, transport, port string, ok bool) {
	if len(a) < 2 {
		return "", "", "", false
	}
	switch a[0].Protocol().Code {
	case ma.P_IP4, ma.P_IP6:
	default:
		return "", "", "", false
	}
	switch a[1].Protocol().Code {
	case ma.P_TCP:
		transport = "tcp"
	case ma.P_UDP:
		transport = "udp"
	default:
		return "", "", "", false
	}
	return a[0].Value(), transport, a[1].Value(), true
}

func ipFamily(ip string) string {
	if strings.Contains(ip, ":") {
		return "ip6"
	}
	return "ip4"
}
