package node

import (
	"context"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/events"
	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/node/handshake"
	"github.com/overlay-net/overlay/protocol"
)

// IsMember reports whether p passed the handshake in this session, waiting
// for a handshake in progress until ctx is done.
func (n *Node) IsMember(ctx context.Context, p peer.ID) bool {
	s, ok := n.verdicts.Wait(ctx, p)
	return ok && s == book.StateMember
}

// WaitVerdict waits for the outcome of p's handshake in this session.
func (n *Node) WaitVerdict(ctx context.Context, p peer.ID) (book.State, bool) {
	return n.verdicts.Wait(ctx, p)
}

// hello is this node's hello, without a proof (node/handshake adds it).
func (n *Node) hello() protocol.Hello {
	return protocol.Hello{
		Network: n.cfg.Network,
		Version: n.cfg.HandshakeVersion,
		Role:    n.cfg.Role,
		Agent:   Agent,
		Direct:  capAddrs(n.DirectAddrs()),
		Relayed: capAddrs(n.RelayedAddrs()),
	}
}

func (n *Node) onConnected(c network.Conn) {
	p := c.RemotePeer()
	// A member verdict carries over only while another live connection
	// vouches for it; otherwise a new handshake is due: wait for it.
	others := 0
	for _, oc := range n.host.Network().ConnsToPeer(p) {
		if oc != c && !oc.IsClosed() {
			others++
		}
	}
	n.verdicts.Forget(p, func(s book.State) bool { return others > 0 && s == book.StateMember })
	n.paths.Connected(c)
	if n.ctx.Err() != nil {
		return
	}
	if c.Stat().Direction == network.DirOutbound {
		n.goRun(func() { n.hs.Initiate(n.ctx, c) })
	} else {
		n.goRun(func() { n.hs.Await(n.ctx, c, handshake.ForeignAfter, "sent no handshake") })
	}
}

// onDisconnected forgets a member's verdict once its last connection is
// gone: whoever connects next with that key must pass the handshake again
// before anything trusts it. Other verdicts linger a while (see prune), for
// a Connect waiting on them.
func (n *Node) onDisconnected(c network.Conn) {
	p := c.RemotePeer()
	n.paths.Disconnected(c)
	if len(n.host.Network().ConnsToPeer(p)) > 0 {
		return
	}
	n.unprotect(p)
	n.verdicts.Forget(p, func(s book.State) bool { return s != book.StateMember })
}

// handshakes runs the handshake on the node's connections (node/handshake).
func (n *Node) handshakes() *handshake.Runner {
	return handshake.New(handshake.Config{Network: n.cfg.Network, Version: n.cfg.HandshakeVersion, Local: n.hello, NetworkKey: n.cfg.NetworkKey, Self: n.ID(),
		Certs: n.certs.Mode(), Verdicts: n.verdicts, Noun: n.nounFor, Admit: n.admit, Reject: n.reject, Foreign: n.markForeign, Logger: n.log})
}

func (n *Node) admit(c network.Conn, remote protocol.Hello, crt *cert.Certificate) {
	p := c.RemotePeer()
	ps := n.host.Peerstore()
	ps.AddAddrs(p, remote.Direct, peerstore.AddressTTL)
	ps.AddAddrs(p, remote.Relayed, peerstore.AddressTTL)
	path, _ := n.paths.PathTo(p)
	prev := n.verdicts.Get(p)
	n.protect(p)
	name, groups := n.certs.Admit(p, crt)
	ev := events.EvtVerdict{Peer: p, Conn: c, State: book.StateMember, Role: remote.Role}
	n.recordVerdict(ev, func(pi *book.PeerInfo) {
		pi.Role, pi.State, pi.Reason, pi.RefusedBy = remote.Role, book.StateMember, "", ""
		pi.Agent, pi.Version, pi.Path, pi.Name, pi.Groups = remote.Agent, remote.Version, path, name, groups
		pi.SetAddrs(remote.Direct, remote.Relayed)
	})
	if prev != book.StateMember {
		n.log.Info("peer joined", "peer", p, "role", remote.Role, "path", path)
	}
}

// reject books a refusal, worded for this node: when the peer refused us,
// from our side ("the relay is on network ..."), else as we told the peer.
func (n *Node) reject(c network.Conn, reason string, byPeer bool, remote protocol.Hello) {
	p := c.RemotePeer()
	ev := events.EvtVerdict{Peer: p, Conn: c, State: book.StateRejected, Role: remote.Role,
		Reason: reason, RefusedBy: book.RefusedBySelf}
	if byPeer {
		ev.RefusedBy = book.RefusedByPeer
	}
	n.recordVerdict(ev, func(pi *book.PeerInfo) {
		if remote.Role != "" {
			pi.Role = remote.Role
		}
		pi.State, pi.Reason, pi.RefusedBy = book.StateRejected, ev.Reason, ev.RefusedBy
	})
	switch {
	case !byPeer && n.refusals != nil:
		// A relay meets any number of strangers: one line per peer would
		// let a flood of them flood the log too.
		n.log.Debug("refused peer", "peer", p, "reason", ev.Reason)
		n.refusals.Add("handshake-rejected")
	case !byPeer:
		n.log.Warn("refused peer", "peer", p, "reason", ev.Reason)
	case !n.isRelay(p): // the keeper words a relay's refusal itself
		n.log.Warn("peer refused this node", "peer", p, "reason", ev.Reason)
	}
}

// nounFor names a peer in a refusal: "the relay" for one of this node's
// relays, else "the peer". A hello's role would be a guess that depends on
// which side dialed, so it is not used.
func (n *Node) nounFor(p peer.ID) string {
	if n.isRelay(p) {
		return "the relay"
	}
	return "the peer"
}

// markForeign books a peer the handshake runner found foreign (its verdict
// is set already).
func (n *Node) markForeign(c network.Conn, reason string) {
	p := c.RemotePeer()
	path, _ := n.paths.PathTo(p)
	ev := events.EvtVerdict{Peer: p, Conn: c, State: book.StateForeign, Reason: reason}
	n.recordVerdict(ev, func(pi *book.PeerInfo) {
		pi.State, pi.Reason, pi.Path = book.StateForeign, reason, path
		if c.Stat().Direction == network.DirOutbound {
			pi.MergeAddrs(onlyDirect(n.host.Peerstore().Addrs(p)))
		}
	})
	n.log.Debug("foreign peer (no overlay handshake)", "peer", p, "reason", reason)
	if n.strangers != nil {
		n.strangers.Drop(p)
	}
}

func onlyDirect(as []ma.Multiaddr) []ma.Multiaddr {
	d, _ := book.SplitAddrs(as)
	return d
}

func capAddrs[T any](as []T) []T {
	if len(as) > protocol.MaxAddrs {
		return as[:protocol.MaxAddrs]
	}
	return as
}

// protectTag keeps members' connections from the connection manager's
// trims: above its high watermark it cuts strangers, never members.
const protectTag = "overlay-member"

func (n *Node) protect(p peer.ID)   { n.host.ConnManager().Protect(p, protectTag) }
func (n *Node) unprotect(p peer.ID) { n.host.ConnManager().Unprotect(p, protectTag) }
