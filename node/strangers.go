package node

import (
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/protocol"
)

// maxHeldStrangers bounds the strangers waiting out their grace: past it,
// a new one is cut at once. The relay's inbound connection limit keeps 256
// slots beyond its members' (relay.LimitsFor); strangers that connect
// faster than the grace lets them go must not take all of them.
var maxHeldStrangers int64 = 128

// dropStranger closes p's inbound connections after the relay's stranger
// grace, unless p is a member by then or the relay serves it (open, or
// allowlisted). Without this, peers that connect and stay (300 stock
// libp2p hosts) held the relay's inbound connection slots for good, and no
// new member could join. Outbound connections are this node's own choice
// and stay.
func (n *Node) dropStranger(p peer.ID) {
	grace := n.cfg.Relay.StrangerGrace
	if n.cfg.Role != protocol.RolePublic || grace == 0 || n.cfg.Relay.Serves(p) {
		return
	}
	if n.heldStrangers.Add(1) > maxHeldStrangers {
		grace = 0
	}
	n.goRun(func() {
		defer n.heldStrangers.Add(-1)
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		if n.verdicts.get(p) == book.StateMember {
			return
		}
		var inbound []network.Conn
		for _, c := range n.host.Network().ConnsToPeer(p) {
			if c.Stat().Direction == network.DirInbound {
				inbound = append(inbound, c)
			}
		}
		// Counted before the close, so whoever sees the connection end
		// (status, a test) also sees the refusal.
		if len(inbound) > 0 {
			n.refusals.Add("stranger-grace")
		}
		for _, c := range inbound {
			c.Close()
		}
	})
}
