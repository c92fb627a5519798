package node

import (
	"slices"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/node/handshake"
	"github.com/overlay-net/overlay/protocol"
)

// watchIdentify keeps members' address books current: a peer announces new
// addresses through identify (at connect, and pushed when they change, as
// when a private peer gains or loses a reservation), while the handshake
// saw only those it had at the time.
func (n *Node) watchIdentify() error {
	return n.follow(new(event.EvtPeerIdentificationCompleted), func(e any) {
		n.noteAddrs(e.(event.EvtPeerIdentificationCompleted))
	})
}

func (n *Node) noteAddrs(ev event.EvtPeerIdentificationCompleted) {
	n.paths.Observed(ev.Peer, ev.Conn, ev.ObservedAddr)
	// A peer that dialed us and whose identify lists no handshake protocol
	// is most likely a stock libp2p node. Identify's list is a snapshot the
	// remote may not have updated yet (a node just started), so this is a
	// hint, not a verdict: give its handshake a short grace instead of the
	// full handshake.ForeignAfter, so relay requests waiting on it are refused soon.
	// An outbound connection needs no hint: our own handshake attempt finds
	// out for certain.
	if ev.Conn != nil && ev.Conn.Stat().Direction == network.DirInbound &&
		len(ev.Protocols) > 0 && !slices.Contains(ev.Protocols, protocol.HandshakeID) {
		n.goRun(func() {
			n.hs.Await(n.ctx, ev.Conn, handshake.StockGrace, "its identify lists no "+protocol.HandshakeID)
		})
		return
	}
	if n.verdicts.Get(ev.Peer) != book.StateMember || len(ev.ListenAddrs) == 0 {
		return
	}
	direct, relayed := book.SplitAddrs(capAddrs(ev.ListenAddrs))
	n.book.Update(ev.Peer, func(p *book.PeerInfo) { p.SetAddrs(direct, relayed) })
}

// trustsObservation says whether p's report of our address is believed:
// p is one of our relays or a member (see node/path).
func (n *Node) trustsObservation(p peer.ID) bool {
	return n.isRelay(p) || n.verdicts.Get(p) == book.StateMember
}
