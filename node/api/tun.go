package api

import (
	"net/netip"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/node/tun"
)

// tunAddrs are the overlay interface's members by peer ID; nil when the
// node runs no interface.
func tunAddrs(n *node.Node) map[peer.ID]tun.Member {
	i := n.TUN()
	if i == nil {
		return nil
	}
	ms := i.Members()
	out := make(map[peer.ID]tun.Member, len(ms))
	for _, m := range ms {
		if m.Collision != "" {
			m.V4 = netip.Addr{} // another member's: not this one's to show
		}
		out[m.ID] = m
	}
	return out
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
